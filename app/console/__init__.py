"""The web console: pages served under ``/console`` for the people who read audits.

Every page is a small server-rendered shell (no data in it) plus an ES module that calls the
public ``/v1`` API with the signed-in API key from ``sessionStorage``. So the console can do
exactly what the key's role may do through the API, and nothing the API would refuse.
"""
