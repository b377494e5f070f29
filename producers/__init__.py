"""heimdall.producers"""
