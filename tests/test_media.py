"""Local images to data URIs, type sniffing and header dimensions."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest
from PIL import Image

from genrouter.errors import MediaError
from genrouter.media import (
    decode_data_uri,
    image_dimensions,
    is_local_source,
    resolve_image_source,
    sniff_image_type,
)

FORMATS = [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("BMP", "image/bmp")]


def image_bytes(fmt: str, size: tuple[int, int] = (37, 21), **options: object) -> bytes:
    buffer = io.BytesIO()
    mode = "RGB" if fmt != "GIF" else "P"
    Image.new(mode, size).save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(("fmt", "mime"), [*FORMATS, ("WEBP", "image/webp")])
def test_local_file_becomes_data_uri_with_sniffed_type(tmp_path: Path, fmt: str, mime: str) -> None:
    data = image_bytes(fmt)
    path = tmp_path / "picture.txt"  # the extension lies; the content decides
    path.write_bytes(data)
    uri = resolve_image_source(str(path))
    assert uri.startswith(f"data:{mime};base64,")
    assert decode_data_uri(uri) == (mime, data)


def test_file_url_and_relative_and_home_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = image_bytes("PNG")
    (tmp_path / "a b.png").write_bytes(data)
    expected = "data:image/png;base64," + base64.b64encode(data).decode()
    assert resolve_image_source((tmp_path / "a b.png").as_uri()) == expected
    monkeypatch.chdir(tmp_path)
    assert resolve_image_source("a b.png") == expected
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_image_source("~/a b.png") == expected


def test_remote_urls_pass_through_untouched() -> None:
    for url in ("https://example.com/x.png", "http://example.com/y", "HTTPS://EXAMPLE.COM/z"):
        assert resolve_image_source(url) == url
        assert not is_local_source(url)


def test_valid_data_uri_passes_through() -> None:
    uri = "data:image/png;base64," + base64.b64encode(image_bytes("PNG")).decode()
    assert resolve_image_source(uri) == uri
    assert not is_local_source(uri)


def test_local_sources_are_detected() -> None:
    assert is_local_source("/tmp/x.png")
    assert is_local_source("file:///tmp/x.png")
    assert is_local_source("~/x.png")
    assert is_local_source("pics/x.png")


def test_missing_file_names_the_source(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.png")
    with pytest.raises(MediaError, match="does not exist") as info:
        resolve_image_source(missing)
    assert info.value.source == missing
    assert missing in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.png"
    path.write_bytes(image_bytes("PNG"))
    path.chmod(0)
    with pytest.raises(MediaError, match="not readable"):
        resolve_image_source(str(path))


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="directory"):
        resolve_image_source(str(tmp_path))


def test_unsupported_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fake.png"
    path.write_bytes(b"%PDF-1.7 not an image")
    with pytest.raises(MediaError, match="not a PNG, JPEG"):
        resolve_image_source(str(path))


def test_oversize_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(image_bytes("PNG", (200, 200)))
    with pytest.raises(MediaError, match="over the limit of 100 bytes"):
        resolve_image_source(str(path), max_bytes=100)


def test_oversize_data_uri_is_refused() -> None:
    uri = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 200).decode()
    with pytest.raises(MediaError, match="over the limit"):
        resolve_image_source(uri, max_bytes=100)


@pytest.mark.parametrize(
    "uri",
    ["data:image/png;base64,@@@not-base64@@@", "data:image/png;base64", "data:text/plain,hello"],
)
def test_bad_data_uris_are_refused(uri: str) -> None:
    with pytest.raises(MediaError):
        resolve_image_source(uri)


def test_remote_file_url_host_is_refused() -> None:
    with pytest.raises(MediaError, match="remote host"):
        resolve_image_source("file://server/share/x.png")


def test_plain_data_uri_decodes_percent_escapes() -> None:
    assert decode_data_uri("data:,a%20b") == ("text/plain", b"a b")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP"])
def test_sniff(fmt: str) -> None:
    assert sniff_image_type(image_bytes(fmt)[:32]) == dict(FORMATS)[fmt]
    assert sniff_image_type(b"hello") is None


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("PNG", {}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("GIF", {}),
        ("WEBP", {"lossless": False}),
        ("WEBP", {"lossless": True}),
    ],
)
def test_dimensions_from_headers(fmt: str, options: dict[str, object]) -> None:
    assert image_dimensions(image_bytes(fmt, (37, 21), **options)) == (37, 21)


def test_dimensions_of_extended_webp() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (50, 30), (1, 2, 3, 128)).save(buffer, format="WEBP", exif=b"Exif\0\0")
    assert image_dimensions(buffer.getvalue()) == (50, 30)


def test_dimensions_of_unknown_or_truncated_data() -> None:
    assert image_dimensions(b"not an image") is None
    assert image_dimensions(image_bytes("PNG")[:18]) is None
    assert image_dimensions(b"\xff\xd8\xff\xe0\x00") is None
