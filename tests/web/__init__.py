"""Tests of the QA web app (Flask test client; the browser tier in test_browser.py)."""
