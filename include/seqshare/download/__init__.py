"""The download client (issue 10): a scientist's `seqshare download` against the internal API.

One module per job: `settings` (server URL and token), `client` (the HTTP client and the listing), `plan`
(what to fetch and where, disk space), `fetch` (one file: resume, verify, name), `body` (bytes to disk and
md5, the md5 on its own thread), `runner` (several files at once, what stops a run), `progress` (a bar for
people, JSON lines for scripts), `errors` (exit codes and messages, in one place). It talks HTTP only: no
database, no server code.
"""
