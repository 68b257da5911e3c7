"""situation"""
