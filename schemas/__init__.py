"""heimdall.schemas"""
