"""heimdall.infra"""
