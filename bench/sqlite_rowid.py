#!/usr/bin/env python3
"""Rowid or WITHOUT ROWID for the journal store's tables (schema v2), measured with the same
columns, indexes and row sizes: fill `journal` with 7 records for each of 20,000 sagas
(interleaved, as concurrent sagas write them; 64 rows per transaction), and `heads` with 50,000
inserts and 2 updates each. Prints the median of 3 runs of each. Usage: bench/sqlite_rowid.py"""
import os
import random
import sqlite3
import statistics
import tempfile
import time

TERMINAL = "('completed', 'compensated', 'cancelled')"
HEAD_INDEXES = f"""
CREATE INDEX heads_due ON heads (wake_at) WHERE wake_at IS NOT NULL AND status NOT IN {TERMINAL};
CREATE INDEX heads_status ON heads (status, id);
CREATE UNIQUE INDEX heads_lock ON heads (correlation_key)
    WHERE exclusive = 1 AND correlation_key <> '' AND status NOT IN {TERMINAL};
CREATE INDEX heads_correlation_key ON heads (correlation_key) WHERE correlation_key <> '';
CREATE INDEX heads_purge ON heads (updated_at) WHERE status IN {TERMINAL};"""


def fresh(name):
    path = os.path.join(tempfile.gettempdir(), f"saga-rowid-{os.getpid()}-{name}.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return path, db


def batches(db, sql, rows, size=64):
    for k in range(0, len(rows), size):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(sql, rows[k:k + size])
        db.execute("COMMIT")


def journal(without, sagas=20000):
    path, db = fresh(f"journal-{without}")
    db.execute(f"""CREATE TABLE journal (saga_id TEXT NOT NULL, version INTEGER NOT NULL,
        at INTEGER NOT NULL, events TEXT NOT NULL, output TEXT, released_through INTEGER NOT NULL,
        data TEXT, snapshot TEXT, PRIMARY KEY (saga_id, version)) {'WITHOUT ROWID' if without else ''}""")
    events = ('[{"t":"step_completed","u":"reserve_budget","a":1},{"t":"attempt_started",'
              '"u":"submit[2]","a":1,"due":1767225630000000,"n":"google_ads"}]')
    output = '[{"to":"google_ads","msg":{"message_id":"' + "m" * 40 + '","payload":"' + "p" * 400 + '"}}]'
    data, snapshot = "d" * 340, "s" * 950
    rows = [(f"campaign-{random.Random(i).getrandbits(48):012x}", v, 1767225600000000 + v, events,
             output if v % 2 else None, v - 1, data if v in (1, 4, 7) else None,
             snapshot if v == 7 else None) for v in range(1, 8) for i in range(sagas)]
    began = time.perf_counter()
    batches(db, "INSERT INTO journal VALUES (?,?,?,?,?,?,?,?)", rows)
    seconds = time.perf_counter() - began
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    size = os.path.getsize(path)
    os.remove(path)
    return seconds, size


def heads(without, n=50000):
    path, db = fresh(f"heads-{without}")
    db.executescript(f"""CREATE TABLE heads (id TEXT PRIMARY KEY NOT NULL, definition TEXT NOT NULL,
        definition_version INTEGER NOT NULL, status TEXT NOT NULL, correlation_key TEXT NOT NULL,
        exclusive INTEGER NOT NULL, wake_at INTEGER, version INTEGER NOT NULL,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL) {'WITHOUT ROWID' if without else ''};
        {HEAD_INDEXES}""")
    ids = [f"campaign-{random.Random(i).getrandbits(48):012x}" for i in range(n)]
    t0 = 1767225600000000
    began = time.perf_counter()
    batches(db, "INSERT INTO heads VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            [(i, "campaign_publishing", 3, "running", "key-" + i, 1, t0 + j, 1, t0, t0)
             for j, i in enumerate(ids)])
    for status in ("waiting", "completed"):
        batches(db, "UPDATE OR IGNORE heads SET status = ?, exclusive = 1, wake_at = ?, version = ?, "
                    "updated_at = ? WHERE id = ?",
                [(status, None if status == "completed" else t0 + 1, 4, t0 + 1, i) for i in ids])
    seconds = time.perf_counter() - began
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    size = os.path.getsize(path)
    os.remove(path)
    return seconds, size


for name, fill in (("journal", journal), ("heads", heads)):
    for without in (False, True):
        runs = [fill(without) for _ in range(3)]
        print(f"{name:8} {'WITHOUT ROWID' if without else 'rowid':13}: median "
              f"{statistics.median(r[0] for r in runs):6.2f} s "
              f"(runs {', '.join(f'{r[0]:.2f}' for r in runs)}), {runs[0][1] / 2**20:6.1f} MiB")
