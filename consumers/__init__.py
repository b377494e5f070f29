"""heimdall.consumers"""
