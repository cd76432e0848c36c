"""What an LMDB data file says of itself, read with plain reads before LMDB maps it.

LMDB maps ``data.mdb`` and reads pages straight from the map: a page past the end of a
file that was cut short (a copy that stopped, a full disk, a bad restore) is not an
error but SIGBUS, which kills the process. So :func:`data_file_problem` compares the
file's size with what its own meta pages claim, and the store refuses the file at open
with the reason instead.

The layout is LMDB's ``mdb.c`` (format version 1), in the build's byte order and word
size (``pgno_t``, ``size_t`` and ``txnid_t`` are words: 8 bytes on 64-bit, 4 on 32-bit):

* page header: ``pgno`` (word), ``pad`` u16, ``flags`` u16, then ``lower``/``upper`` u16
  (or, on an overflow page, its page count, u32);
* meta (pages 0 and 1, right after the header): ``magic`` u32 (0xBEEFC0DE), ``version``
  u32, ``address`` word, ``mapsize`` word, two ``MDB_db`` records (free pages, main),
  ``last_pg`` word, ``txnid`` word. The page size is the free record's ``md_pad``; page 1
  sits at that offset; the live meta is the one with the larger ``txnid``;
* ``MDB_db``: ``pad`` u32, ``flags`` u16, ``depth`` u16, then branch, leaf and overflow
  page counts, entries, root (words);
* node: data size (or child page, 48 bits, on a branch page) as u16 lo, u16 hi (and the
  flags field), ``flags`` u16, ``ksize`` u16, key, data.

``last_pg`` counts pages LMDB allocated, not pages it wrote: pages allocated and freed
again in one transaction (a value put and replaced in one commit) are never written, so
a sound file may end a few pages short of ``(last_pg + 1) * page_size``. Those pages are
on the free list; when the file is short, the free list is read and the store is
refused only if a missing page is not on it (a page that a reader might map).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

MAGIC = 0xBEEFC0DE
DATA_VERSION = 1
WORD = struct.calcsize("P")
P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08
F_BIGDATA = 0x01
P_INVALID = 2 ** (8 * WORD) - 1
MIN_PAGE = 512  # LMDB's own minimum page size (MDB_MINPAGE... sizes are powers of two)
MAX_DEPTH = 32  # LMDB's CURSOR_STACK: no tree is deeper


@dataclass(frozen=True)
class Meta:
    page_size: int
    last_pg: int
    txnid: int
    free_root: int


class _Layout:
    """Field offsets of LMDB's structures for one word size."""

    def __init__(self, word: int) -> None:
        w = "Q" if word == 8 else "I"
        self.word = word
        self.header = word + 8  # PAGEHDRSZ
        self.word_at = struct.Struct("=" + w)
        dbs = 8 + 2 * word
        self.psize_at = dbs  # mm_dbs[FREE_DBI].md_pad
        self.free_root_at = dbs + 8 + 4 * word
        self.last_pg_at = dbs + 2 * (8 + 5 * word)
        self.txnid_at = self.last_pg_at + word
        self.meta_size = self.txnid_at + word


_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")
NATIVE = _Layout(WORD)
OTHER = _Layout(12 - WORD)


def read_meta(f, layout: _Layout = NATIVE) -> Meta | None:
    """The live meta page of the open file ``f``, or ``None`` if either meta page does
    not carry LMDB's stamp in ``layout`` (LMDB refuses such a file itself)."""
    metas = []
    offset = 0
    for _ in range(2):
        page = os.pread(f.fileno(), layout.header + layout.meta_size, offset)
        if len(page) < layout.header + layout.meta_size:
            return None
        if not _U16.unpack_from(page, layout.word + 2)[0] & P_META:
            return None
        m = layout.header
        magic, version = struct.unpack_from("=II", page, m)
        if magic != MAGIC or version != DATA_VERSION:
            return None
        psize = _U32.unpack_from(page, m + layout.psize_at)[0]
        if psize < MIN_PAGE or psize & (psize - 1):
            return None
        metas.append(
            Meta(
                page_size=psize,
                last_pg=layout.word_at.unpack_from(page, m + layout.last_pg_at)[0],
                txnid=layout.word_at.unpack_from(page, m + layout.txnid_at)[0],
                free_root=layout.word_at.unpack_from(page, m + layout.free_root_at)[0],
            )
        )
        offset = metas[0].page_size  # page 1 sits one page (of page 0's size) in
    return max(metas, key=lambda meta: meta.txnid)


def data_file_problem(path: str) -> str | None:
    """What is wrong with the LMDB data file ``path`` (which exists), in words; ``None``
    when nothing is, or when it does not look like LMDB at all (LMDB's own open then
    refuses it, with its own words)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return "is empty (0 bytes): an LMDB store's data file always holds its header"
        problem = None
        for _ in range(5):
            meta = read_meta(f)
            if meta is None:
                return _other_word_size(f)
            # Race: another process may commit meanwhile. The size is read after the
            # meta page: LMDB writes a transaction's pages before its meta page and never
            # shrinks the file, so the size read now covers what this meta page claims.
            size = os.fstat(f.fileno()).st_size
            problem = _short(f, size, meta)
            if problem is None:
                return None
            again = read_meta(f)  # the free list read may have raced a commit: retry
            if again == meta:
                return problem
        return problem


def _other_word_size(f) -> str | None:
    if read_meta(f, OTHER) is not None:
        return (
            f"was written by a {8 * OTHER.word}-bit build of LMDB; this Python's LMDB "
            f"is {8 * WORD}-bit and cannot read it"
        )
    return None


def _short(f, size: int, meta: Meta) -> str | None:
    """Why the file is too short for ``meta``; ``None`` when it is long enough, or
    short only by pages that are on the free list (never read)."""
    needed = (meta.last_pg + 1) * meta.page_size
    if size >= needed:
        return None
    missing = range(size // meta.page_size, meta.last_pg + 1)
    free = _free_pages(f, size, meta)
    if free is not None and all(pgno in free for pgno in missing):
        return None
    return (
        f"is {size} bytes, but its meta page (transaction {meta.txnid}) says it holds "
        f"{meta.last_pg + 1} pages of {meta.page_size} bytes ({needed} bytes): it was cut "
        "short (a copy that stopped, a full disk, a bad restore), and reading the missing "
        "pages would kill the process"
    )


def _free_pages(f, size: int, meta: Meta) -> set[int] | None:
    """The page numbers on the free list of ``meta``; ``None`` if it cannot be read
    whole (a page of it is missing or is not what it should be)."""
    free: set[int] = set()
    if meta.free_root == P_INVALID:
        return free
    layout = NATIVE
    stack = [(meta.free_root, 0)]
    while stack:
        pgno, depth = stack.pop()
        page = _page(f, size, meta, pgno)
        if page is None or depth > MAX_DEPTH:
            return None
        flags = _U16.unpack_from(page, layout.word + 2)[0]
        for node in _nodes(page, layout):
            if flags & P_BRANCH:
                lo, hi, top = struct.unpack_from("=HHH", page, node)
                stack.append((lo | hi << 16 | top << 32, depth + 1))
            elif flags & P_LEAF:
                ids = _leaf_data(f, size, meta, page, node)
                if ids is None:
                    return None
                free.update(_idl(ids, layout))
            else:
                return None
    return free


def _page(f, size: int, meta: Meta, pgno: int) -> bytes | None:
    offset = pgno * meta.page_size
    if pgno > meta.last_pg or offset + meta.page_size > size:
        return None
    page = os.pread(f.fileno(), meta.page_size, offset)
    if NATIVE.word_at.unpack_from(page, 0)[0] != pgno:
        return None
    return page


def _nodes(page: bytes, layout: _Layout) -> list[int]:
    lower = _U16.unpack_from(page, layout.word + 4)[0]
    count = max(0, (lower - layout.header) // 2)
    return [_U16.unpack_from(page, layout.header + 2 * i)[0] for i in range(count)]


def _leaf_data(f, size: int, meta: Meta, page: bytes, node: int) -> bytes | None:
    """A leaf node's data: in the page, or on its overflow pages (``F_BIGDATA``)."""
    if node + 8 > len(page):
        return None
    dsize = _U32.unpack_from(page, node)[0]
    nflags, ksize = struct.unpack_from("=HH", page, node + 4)
    start = node + 8 + ksize
    if not nflags & F_BIGDATA:
        data = page[start : start + dsize]
        return data if len(data) == dsize else None
    overflow = NATIVE.word_at.unpack_from(page, start)[0]
    offset = overflow * meta.page_size + NATIVE.header
    if overflow > meta.last_pg or offset + dsize > size:
        return None
    return os.pread(f.fileno(), dsize, offset)


def _idl(ids: bytes, layout: _Layout) -> list[int]:
    """The page numbers of an LMDB ID list: a count, then that many IDs (words)."""
    words = len(ids) // layout.word
    if not words:
        return []
    count = min(layout.word_at.unpack_from(ids, 0)[0], words - 1)
    fmt = f"={count}{'Q' if layout.word == 8 else 'I'}"
    return list(struct.unpack_from(fmt, ids, layout.word))
