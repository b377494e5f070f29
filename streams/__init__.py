"""heimdall.streams"""
