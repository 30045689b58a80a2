"""Static assets with content-hashed URLs (`/static/css/app.3f2a1b9c.css`), cached for a year, gzip ready.

The manifest is built once at start-up from static/; templates call `static_url("css/app.css")`.
A changed file gets a new URL, so browsers never keep a stale copy and never need to revalidate.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.response import Response

from app.config.settings import BASE_DIR

STATIC_DIR = BASE_DIR / "static"
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(slots=True)
class Asset:
    path: str
    body: bytes
    media_type: str
    etag: str
    compressible: bool
    _gzipped: bytes | None = None
    _gzip_done: bool = False

    @property
    def gzipped(self) -> bytes | None:
        """The gzip body, made on first request and kept (start-up only hashes: the vendored Swagger UI
        alone would cost ~2 s of level-9 gzip in every process). None when gzip would not help."""
        if not self._gzip_done:
            if self.compressible:
                gz = gzip.compress(self.body, compresslevel=9, mtime=0)
                self._gzipped = gz if len(gz) < len(self.body) else None
            self._gzip_done = True
        return self._gzipped


class StaticManifest:
    def __init__(self, root: Path = STATIC_DIR) -> None:
        self.urls: dict[str, str] = {}
        self.assets: dict[str, Asset] = {}
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = file.relative_to(root).as_posix()
            body = file.read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:10]
            stem, dot, ext = rel.rpartition(".")
            hashed = f"{stem}.{digest}.{ext}" if dot else f"{rel}.{digest}"
            media = mimetypes.guess_type(rel)[0] or "application/octet-stream"
            if media.startswith("text/") or media in {"application/javascript", "image/svg+xml"}:
                media += "; charset=utf-8" if "charset" not in media else ""
            compressible = len(body) > 512 and not media.startswith(("image/png", "image/jpeg", "font/woff"))
            asset = Asset(rel, body, media, f'"{digest}"', compressible)
            self.urls[rel] = f"/static/{hashed}"
            self.assets[hashed] = asset

    def url(self, rel: str) -> str:
        try:
            return self.urls[rel]
        except KeyError:
            raise KeyError(f"static asset not found: {rel!r} (is it under static/?)") from None


_manifest: StaticManifest | None = None


def manifest() -> StaticManifest:
    global _manifest
    if _manifest is None:
        _manifest = StaticManifest()
    return _manifest


def static_url(rel: str) -> str:
    return manifest().url(rel)


@get("/static/{path:path}", include_in_schema=False, sync_to_thread=False, cache=False)
def serve_static(request: Request, path: str) -> Response[bytes]:
    asset = manifest().assets.get(path.lstrip("/"))
    if asset is None:
        raise NotFoundException("No such file.")
    headers = {"cache-control": IMMUTABLE, "etag": asset.etag, "vary": "accept-encoding"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(b"", status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        body = asset.gzipped
        headers["content-encoding"] = "gzip"
    return Response(body, media_type=asset.media_type, headers=headers)
