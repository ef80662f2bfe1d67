"""With CARELINE_FILE_STORE=s3 the bytes of attachments live in an S3-compatible bucket (the
real boto3 against a local S3 server) and the rows keep the rest; erasure deletes the rows in
its transaction and the objects after commit, through the relay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bots.files import ObjectEraser
from bots.relay import Handlers, Relay
from core import services
from core.config import Settings
from core.db import tables as t
from core.db.database import Database
from core.db.files import SqlFileStore, file_store_for
from core.db.s3 import S3Blobs
from core.files import describe
from core.model import Channel
from tests.server.support import running
from tests.server.test_files import TicketingEngine
from tests.support.customers import register_customer
from tests.support.s3 import KEY_ID, REGION, SECRET, S3Server

PDF = b"%PDF-1.4\n% bank statement of Ada\n"


def settings_for(s3: S3Server, bucket: str, **extra: object) -> Settings:
    return Settings(
        file_store="s3",
        s3_bucket=bucket,
        s3_endpoint_url=s3.url,
        s3_region=REGION,
        s3_access_key_id=SecretStr(KEY_ID),
        s3_secret_access_key=SecretStr(SECRET),
        _env_file=None,  # type: ignore[call-arg]
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket()


def objects(s3: S3Server, bucket: str) -> dict[str, bytes]:
    client = s3.client()
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


async def test_the_bytes_go_to_the_bucket_and_the_row_keeps_the_rest(
    db: Database,
    s3_server: S3Server,
    bucket: str,
) -> None:
    store = file_store_for(settings_for(s3_server, bucket), db)
    assert isinstance(store.blobs, S3Blobs)
    await store.blobs.check()
    file = describe(PDF, name="statement.pdf", declared=None, limit=1000, owner="webchat:v1")
    await store.put(file, PDF)

    assert objects(s3_server, bucket) == {f"careline/files/{file.id}": PDF}
    head = s3_server.client().head_object(Bucket=bucket, Key=f"careline/files/{file.id}")
    assert head["ContentType"] == "application/pdf"
    assert head["Metadata"] == {"sha256": file.sha256}
    async with db.engine.connect() as conn:
        [row] = (await conn.execute(select(t.stored_files.c.name, t.stored_files.c.content))).all()
    assert row == ("statement.pdf", None)
    assert await store.read(file.id) == (file, PDF)
    # The database's own store cannot read it, and says why.
    with pytest.raises(RuntimeError, match="CARELINE_FILE_STORE=s3"):
        await SqlFileStore(db).read(file.id)


async def test_a_missing_bucket_is_a_clear_error_at_start(
    db: Database,
    s3_server: S3Server,
) -> None:
    store = file_store_for(settings_for(s3_server, "no-such-bucket"), db)
    assert store.blobs is not None
    with pytest.raises(RuntimeError, match="'no-such-bucket' is not reachable"):
        await store.blobs.check()  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="needs CARELINE_S3_BUCKET"):
        file_store_for(Settings(file_store="s3", _env_file=None), db)  # type: ignore[call-arg]


async def test_erasure_deletes_the_objects_after_commit(
    db: Database,
    s3_server: S3Server,
    bucket: str,
) -> None:
    store = file_store_for(settings_for(s3_server, bucket), db)
    assert store.blobs is not None
    async with db.uow() as uow:
        customer, _ = await register_customer(
            uow, channel=Channel.TELEGRAM, external_id="77", chat_id="77", display_name="Ada"
        )
        await uow.commit()
    assert customer.id is not None
    theirs = describe(PDF, name="a.pdf", declared=None, limit=1000, owner="telegram:77")
    others = describe(b"%PDF-1.4 Bob", name="b.pdf", declared=None, limit=1000, owner="telegram:8")
    await store.put(theirs, PDF)
    await store.put(others, b"%PDF-1.4 Bob")

    handlers = Handlers()
    ObjectEraser(store.blobs).register(handlers)
    relay = Relay(db, handlers)
    async with db.uow() as uow:
        await services.erase_customer(uow, customer.id)
        await uow.rollback()  # an erasure that does not commit loses nothing
    while await relay.drain_once():
        pass
    assert len(objects(s3_server, bucket)) == 2

    async with db.uow() as uow:
        await services.erase_customer(uow, customer.id)
        await uow.commit()
    while await relay.drain_once():
        pass
    assert objects(s3_server, bucket) == {f"careline/files/{others.id}": b"%PDF-1.4 Bob"}
    assert await store.read(theirs.id) is None


@pytest.fixture
def s3_careline(
    tmp_path: Path,
    s3_server: S3Server,
    bucket: str,
) -> Iterator[tuple[str, str, TicketingEngine]]:
    url = f"sqlite+aiosqlite:///{tmp_path}/careline.db"
    settings = settings_for(s3_server, bucket, database_url=url, data_dir=str(tmp_path / "var"))
    engine = TicketingEngine(url)
    with running(settings, engine) as server:
        yield server.url, str(server.app.state.runtime.admin_key), engine


def test_the_server_keeps_uploads_in_the_bucket_and_serves_them(
    s3_careline: tuple[str, str, TicketingEngine],
    s3_server: S3Server,
    bucket: str,
) -> None:
    url, key, engine = s3_careline
    with httpx.Client(base_url=url) as visitor:
        visitor.post("/chat/api/session")
        sent = visitor.post("/chat/api/upload", files={"file": ("s.pdf", PDF, "application/pdf")})
    assert sent.status_code == 200, sent.text
    [(name, content)] = objects(s3_server, bucket).items()
    assert content == PDF
    stored_id = name.removeprefix("careline/files/")
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})
    link = admin.get(f"/api/v1/tickets/{engine.tickets[-1]}/files/{stored_id}").json()["url"]
    assert httpx.get(url + link).content == PDF
