"""Documents to text (plain, data: URIs, files, a loopback HTTP server; PDF, HTML, text)
and text to chunks, with chunk sizes and overlaps checked by counting tokens."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest

from stackray.api.common import URL, ImageContentItem, TextContentItem, URLOrData
from stackray.api.errors import BadRequestError
from stackray.api.vector_io import Chunk
from stackray.providers.utils.documents import (
    DEFAULT_TOKENIZER,
    HFTokenizer,
    RegexTokenizer,
    chunk_text,
    content_from_source,
    document_text,
    make_chunks,
    minilm_tokenizer,
)


def make_pdf(pages: list[str]) -> bytes:
    """A minimal, valid PDF with one line of Helvetica text per page."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font_id = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {4 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


PDF = make_pdf(["Ray Serve scales deployments.", "Second page (with parentheses)."])
HTML = """<!DOCTYPE html><html><head><title>Stack page</title>
<style>body { color: red }</style><script>var hidden = "not text";</script></head>
<body><h1>Heading</h1><p>First &amp; second<br>line two</p>
<ul><li>one</li><li>two</li></ul><noscript>no</noscript></body></html>"""
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)


def text_of(source, mime_type=None, **kwargs) -> str:
    return asyncio.run(document_text(source, mime_type, name="doc-1", **kwargs))


def rejected(source, mime_type=None, **kwargs) -> BadRequestError:
    with pytest.raises(BadRequestError) as err:
        text_of(source, mime_type, **kwargs)
    assert "'doc-1'" in err.value.message  # the document is named
    return err.value


# ---------------------------------------------------------------------------------------
# Sources and conversion
# ---------------------------------------------------------------------------------------


def test_plain_text_and_content_items() -> None:
    assert text_of("just some text\nwith lines") == "just some text\nwith lines"
    assert text_of("/etc/passwd") == "/etc/passwd"  # a plain string is text, never a path
    assert text_of(TextContentItem(text="item")) == "item"
    assert text_of([TextContentItem(text="a"), TextContentItem(text="b")]) == "a\nb"
    image = ImageContentItem(image=URLOrData(data="aGk="))
    assert "image" in rejected(image).message


def test_pdf_to_text() -> None:
    text = text_of(PDF, "application/pdf")
    assert "Ray Serve scales deployments." in text
    assert "Second page (with parentheses)." in text
    assert text.index("Ray Serve") < text.index("Second page")
    assert text_of(PDF) == text  # sniffed without a media type
    assert "not a readable PDF" in rejected(b"%PDF-1.4 garbage", "application/pdf").message


def test_html_to_text() -> None:
    text = text_of(HTML.encode(), "text/html; charset=utf-8")
    lines = text.splitlines()
    assert lines[0] == "Stack page"
    assert "Heading" in lines and "First & second" in lines and "line two" in lines
    assert "one" in lines and "two" in lines
    assert "hidden" not in text and "color" not in text and "no" not in lines


def test_data_uris() -> None:
    md = "# Title\n\nSome *markdown* – with ünïcode."
    b64 = base64.b64encode(md.encode()).decode()
    assert text_of(f"data:text/markdown;base64,{b64}") == md
    assert text_of(URL(uri=f"data:text/markdown;charset=utf-8;base64,{b64}")) == md
    assert text_of("data:," + quote("percent encoded, plain")) == "percent encoded, plain"
    latin = base64.b64encode("café".encode("latin-1")).decode()
    assert text_of(f"data:text/plain;charset=latin-1;base64,{latin}") == "café"
    pdf = base64.b64encode(PDF).decode()
    assert "Ray Serve" in text_of(f"data:application/pdf;base64,{pdf}")
    html = base64.b64encode(HTML.encode()).decode()
    assert "Heading" in text_of(f"data:text/html;base64,{html}")
    assert '{"a": 1}' == text_of("data:application/json," + quote('{"a": 1}'))

    assert "base64" in rejected("data:text/plain;base64,***").message
    assert "','" in rejected("data:text/plain;base64").message
    png = base64.b64encode(PNG).decode()
    assert "image/png" in rejected(f"data:image/png;base64,{png}").message


def test_local_files(tmp_path: Path) -> None:
    (tmp_path / "doc.pdf").write_bytes(PDF)
    (tmp_path / "page.html").write_text(HTML)
    (tmp_path / "notes.md").write_text("notes *here*")
    (tmp_path / "my file.txt").write_text("spaced name")
    allowed = {"allowed_dirs": [tmp_path]}
    assert "Ray Serve" in text_of(f"file://{tmp_path}/doc.pdf", **allowed)
    assert "Heading" in text_of(tmp_path / "page.html", **allowed)
    assert text_of(URL(uri=str(tmp_path / "notes.md")), **allowed) == "notes *here*"
    assert text_of(f"file://{quote(str(tmp_path))}/my%20file.txt", **allowed) == "spaced name"

    assert "not allowed" in rejected(tmp_path / "notes.md").message
    outside = tmp_path.parent / "outside.txt"
    outside.write_text("secret")
    assert "outside" in rejected(f"file://{outside}", **allowed).message
    escape = f"file://{tmp_path}/../outside.txt"
    assert "outside" in rejected(escape, **allowed).message
    assert "no file" in rejected(tmp_path / "missing.txt", **allowed).message
    (tmp_path / "big.txt").write_text("x" * 100)
    assert "at most 10" in rejected(tmp_path / "big.txt", max_bytes=10, **allowed).message
    assert "ftp" in rejected(URL(uri="ftp://example.com/x")).message


class _Handler(BaseHTTPRequestHandler):
    ROUTES = {
        "/page.html": ("text/html; charset=utf-8", HTML.encode()),
        "/doc.pdf": ("application/octet-stream", PDF),  # a generic type: sniffed
        "/report": ("application/pdf", PDF),
        "/data.json": ("application/json", b'{"k": [1, 2]}'),
        "/image.png": ("image/png", PNG),
        "/big.txt": ("text/plain", b"y" * 5000),
    }

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/data.json")
            self.end_headers()
            return
        if self.path not in self.ROUTES:
            self.send_error(404)
            return
        content_type, body = self.ROUTES[self.path]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def test_http_urls(web: str) -> None:
    assert "First & second" in text_of(f"{web}/page.html")
    assert "Ray Serve" in text_of(URL(uri=f"{web}/doc.pdf"))
    assert "Second page" in text_of(f"{web}/report")
    assert text_of(f"{web}/moved") == '{"k": [1, 2]}'
    content = asyncio.run(content_from_source(f"{web}/report", name="r"))
    assert content.mime_type == "application/pdf" and content.data == PDF

    assert "HTTP 404" in rejected(f"{web}/missing").message
    assert "image/png" in rejected(f"{web}/image.png").message
    assert "at most 1000" in rejected(f"{web}/big.txt", max_bytes=1000).message
    assert "cannot fetch" in rejected("http://127.0.0.1:9/nothing-listens").message
    # The caller's own media type wins over the server's.
    assert text_of(f"{web}/page.html", "text/plain").startswith("<!DOCTYPE html>")


def test_raw_bytes() -> None:
    assert text_of("ünïcode".encode(), "text/plain") == "ünïcode"
    assert text_of(b"col1,col2\n1,2", "text/csv") == "col1,col2\n1,2"
    assert text_of(b"\xef\xbb\xbfwith BOM", "text/plain") == "with BOM"
    assert text_of(b"no type given") == "no type given"
    assert "image/png" in rejected(PNG, "image/png").message
    assert "binary" in rejected(b"\x00\x01\x02\xff", None).message
    assert "UTF-8" in rejected(b"\xff\xfe\xfa", "text/plain").message
    assert "charset" in rejected(b"x", "text/plain; charset=klingon").message
    assert "application/zip" in rejected(b"PK\x03\x04", "application/zip").message


# ---------------------------------------------------------------------------------------
# Chunks
# ---------------------------------------------------------------------------------------

PROSE = " ".join(
    f"Sentence {i} says that Ray Serve replicas (autoscaled, {i % 7} of them) answer requests."
    for i in range(200)
)


def tokens_of(text: str, tokenizer=DEFAULT_TOKENIZER) -> list[str]:
    return [text[s:e] for s, e, _ in tokenizer.units(text, 10**9)]


@pytest.mark.parametrize("size,overlap", [(1, 0), (7, 0), (50, 10), (64, 63), (512, 128)])
def test_chunk_sizes_and_overlaps_in_tokens(size: int, overlap: int) -> None:
    chunks = chunk_text(PROSE, size, overlap)
    assert chunks and all(c.strip() for c in chunks)
    all_tokens = tokens_of(PROSE)
    rebuilt: list[str] = []
    for i, chunk in enumerate(chunks):
        tokens = tokens_of(chunk)
        assert DEFAULT_TOKENIZER.count(chunk) == len(tokens) <= size
        assert chunk in PROSE
        if i < len(chunks) - 1:
            assert len(tokens) == size  # every chunk but the last is full
        if i == 0:
            rebuilt = tokens
        else:
            previous = tokens_of(chunks[i - 1])
            assert tokens[:overlap] == previous[len(previous) - overlap :]  # exact overlap
            rebuilt += tokens[overlap:]
    assert rebuilt == all_tokens  # every token, in order, nothing twice


def test_chunks_of_short_and_empty_text() -> None:
    assert chunk_text("", 10, 2) == []
    assert chunk_text(" \n\t ", 10, 2) == []
    assert chunk_text("  one two  ", 10, 2) == ["one two"]
    assert chunk_text("一二三四五", 2, 1) == ["一二", "二三", "三四", "四五"]


@pytest.mark.parametrize("size,overlap", [(0, 0), (10, 10), (10, -1), (10, 11)])
def test_bad_chunk_sizes(size: int, overlap: int) -> None:
    with pytest.raises(BadRequestError) as err:
        chunk_text("some text", size, overlap)
    assert err.value.field in {"chunk_size_in_tokens", "overlap_tokens"}


def test_chunks_with_the_minilm_tokenizer() -> None:
    tokenizer = minilm_tokenizer()
    assert isinstance(tokenizer, HFTokenizer)
    text = PROSE + " Tokenization internationalization unbelievably."
    chunks = chunk_text(text, 40, 8, tokenizer=tokenizer)
    assert len(chunks) > 10
    for i, chunk in enumerate(chunks):
        # Chunks hold whole words, so counting a chunk alone gives at most the size.
        assert 0 < tokenizer.count(chunk) <= 40
        assert chunk in text
        if i:
            previous = chunks[i - 1]
            # The overlap is whole words from the end of the previous chunk, <= 8 tokens.
            shared = next(
                n for n in range(len(chunk), 0, -1) if previous.endswith(chunk[:n].rstrip())
            )
            assert 0 < tokenizer.count(chunk[:shared]) <= 8
    assert any("internationalization" in c for c in chunks)  # words are never cut
    docs = (Path(__file__).resolve().parents[4] / "docs" / "files.md").read_text()
    for chunk in make_chunks("d", text + docs, 40, 8, tokenizer=tokenizer):
        assert chunk.metadata["token_count"] == tokenizer.count(str(chunk.content))
    # A word longer than a chunk is split between its tokens.
    long_word = "supercalifragilistic" * 4  # 27 word pieces
    pieces = chunk_text(long_word, 5, 0, tokenizer=tokenizer)
    assert "".join(pieces) == long_word and len(pieces) == 6


def test_make_chunks_metadata() -> None:
    chunks = make_chunks("doc-9", PROSE, 100, 20, metadata={"author": "ray", "document_id": "x"})
    assert all(isinstance(c, Chunk) for c in chunks)
    assert [c.metadata["chunk_index"] for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.metadata["document_id"] == "doc-9"  # ours, not the metadata's
        assert chunk.metadata["author"] == "ray"
        assert chunk.metadata["token_count"] == RegexTokenizer().count(str(chunk.content))
    ids = [c.metadata["chunk_id"] for c in chunks]
    assert len(set(ids)) == len(ids)
    assert ids == [c.metadata["chunk_id"] for c in make_chunks("doc-9", PROSE, 100, 20)]
    assert ids[0] != make_chunks("doc-10", PROSE, 100, 20)[0].metadata["chunk_id"]
    # Overlap defaults to a quarter of the chunk size.
    default = make_chunks("d", PROSE, 100)
    assert tokens_of(str(default[1].content))[:25] == tokens_of(str(default[0].content))[75:]
    assert make_chunks("empty", "   ") == []
