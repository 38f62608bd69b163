"""Blinded reader study: prepare a study folder from a run folder, serve it to readers, export.

``prepare`` selects cases and renders every panel through one pipeline; ``db`` holds the SQLite
schema; ``auth`` the tokens, hashing and CSRF; ``app`` the Flask app; ``commands`` the
``bench reader-study`` handlers. Method names live only in the private key
(``STUDY_DIR/key/key.json``), read by :mod:`benchmark.reader_study.export` and nothing the app serves.
"""
