"""Blinded reader study: prepare a study folder from a run folder, serve it to readers, export.

``prepare`` selects cases and renders every panel through one pipeline; ``private`` keeps the
study folder readable by its owner only; ``db`` holds the SQLite schema; ``auth`` the tokens,
hashing and CSRF; ``sessions`` the server-side sessions and the login view; ``limits`` the request,
connection and login limits; ``study`` the served study and its per-request handle; ``app`` the
Flask app factory with the ``reader`` and ``admin`` blueprints (which reach the study through
``current_app``, never through ``app``); ``commands`` the ``bench reader-study`` handlers. Method
names live only in the private key (``STUDY_DIR/key/key.json``), read by
:mod:`benchmark.reader_study.export` and nothing the app serves.
"""
