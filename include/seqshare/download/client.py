"""The one HTTP client a download uses, and the listing request (contract: `GET /api/v1/downloads`).

One `httpx.Client` for the whole run: its pool keeps one connection per parallel transfer alive from file
to file. Read timeout is long because the server hashes a file it has never hashed before it sends the
first byte (minutes for a 100 GiB file); connecting is quick or the server is out of reach.
"""

from __future__ import annotations

import httpx

from seqshare.download.errors import from_response, from_transport
from seqshare.download.plan import Listing, parse_listing
from seqshare.download.settings import ClientSettings

API = "/api/v1"
READ_SIZE = 1 << 20
TIMEOUT = httpx.Timeout(connect=15.0, read=900.0, write=60.0, pool=None)


def _read_large() -> None:
    """httpcore reads a socket 64 KiB at a time, and each read costs Python work in its HTTP/1.1 parser;
    1 MiB reads cut that by 0.25 CPU s per GiB here. A class attribute of httpcore 1.0 (locked), set for
    this process, which is the download command's; left alone if httpcore no longer has it."""
    from httpcore._sync.http11 import HTTP11Connection

    if isinstance(getattr(HTTP11Connection, "READ_NUM_BYTES", None), int):
        HTTP11Connection.READ_NUM_BYTES = max(HTTP11Connection.READ_NUM_BYTES, READ_SIZE)


def open_client(settings: ClientSettings, parallel: int) -> httpx.Client:
    _read_large()
    return httpx.Client(
        base_url=settings.url,
        headers={
            "Authorization": f"Bearer {settings.token}",
            "Accept-Encoding": "identity",  # fastq.gz does not compress; md5 is over the bytes as stored
            "User-Agent": "seqshare-download",
        },
        timeout=TIMEOUT,
        limits=httpx.Limits(max_connections=parallel + 1, max_keepalive_connections=parallel + 1),
        follow_redirects=False,  # a redirect could carry the token elsewhere
    )  # trust_env stays on, as for curl: HTTPS_PROXY/NO_PROXY and SSL_CERT_FILE apply


def list_files(client: httpx.Client, target: str, run: str | None) -> Listing:
    """The files of a pool or project that the token's user may download now (raises NotVisible if none:
    missing and hidden are the same answer)."""
    params = {"target": target} | ({"run": run} if run else {})
    try:
        response = client.get(f"{API}/downloads", params=params)
    except httpx.TransportError as exc:
        raise from_transport(exc, str(client.base_url)) from None
    if response.status_code != 200:
        raise from_response(response, target)
    try:
        data = response.json()
    except ValueError:
        data = None
    return parse_listing(data)
