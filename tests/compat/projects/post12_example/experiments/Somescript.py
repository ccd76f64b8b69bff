import os

def my():
    return "MMMMMYYYYYYY"
