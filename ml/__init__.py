"""heimdall.ml"""
