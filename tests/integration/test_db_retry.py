"""A database connection reset is a transient failure: the step is retried and succeeds.

A real TCP proxy on loopback stands between Spark and PostgreSQL and resets (RST) the first
connections it accepts; later ones are forwarded. Nothing is patched in the code under test.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

import dagster as dg
import pytest

from datahub_assets.demo import local_servers
from datahub_assets.orchestration.project import build_assets
from datahub_assets.spec.loader import load_project
from datahub_resources.deployment import resources
from datahub_resources.iceberg import load_catalog

pytestmark = pytest.mark.spark


class ResettingProxy:
    """Forwards 127.0.0.1:<port> to `target_port`, resetting the first `resets` connections."""

    def __init__(self, target_port: int, resets: int) -> None:
        self.target, self.resets, self.accepted = target_port, resets, 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted <= self.resets:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()  # RST: "Connection reset by peer" on the other side
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):  # the other side closed it already
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        self.sock.close()


@pytest.mark.usefixtures("spark")
def test_connection_reset_is_retried_and_the_run_succeeds(settings, postgres_server, monkeypatch):
    from datahub_assets.runtime import retries

    monkeypatch.setattr(retries, "DB_CONNECTION", retries.RetryClass("db_connection", 3, 0))
    local_servers.create_database(postgres_server, "crm_retry")
    import psycopg

    with psycopg.connect(
        host="127.0.0.1",
        port=postgres_server.port,
        user="datahub",
        dbname="crm_retry",
        autocommit=True,
    ) as conn:
        conn.execute("create table if not exists t (id int primary key, name text)")
        conn.execute("insert into t values (1, 'a'), (2, 'b') on conflict do nothing")
    proxy = ResettingProxy(postgres_server.port, resets=1)
    monkeypatch.setenv("CRM_DB", "datahub")
    folder = settings.pipelines_dir / "crm" / "raw"
    folder.mkdir(parents=True)
    (folder / "t.xml").write_text(f"""<pipeline id="t" layer="raw">
  <sources><database id="t" jdbcUrl="jdbc:postgresql://127.0.0.1:{proxy.port}/crm_retry"
                     userSecretRef="CRM_DB"><table name="t"/></database></sources>
  <targets><table table="t"/></targets>
</pipeline>
""")
    try:
        (asset,) = build_assets(load_project(settings.pipelines_dir))
        result = dg.materialize([asset], resources=resources(), raise_on_error=False)
    finally:
        proxy.close()
    retried = [
        e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
    ]
    assert len(retried) == 1, [e.message for e in result.all_events if e.message][-5:]
    # classified as a database connection failure (the only class patched to wait 0 s)
    failure = retried[0].event_specific_data.error.to_string()
    assert "SQLSTATE 08001" in failure
    assert "a transient failure, retried" in failure
    assert result.success
    rows = load_catalog(settings).load_table("crm_raw.t").scan().to_arrow().to_pylist()
    assert sorted(r["id"] for r in rows) == [1, 2]
