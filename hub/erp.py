"""The demo source: a small slice of the school ERP's database (students, guardians, invoices).

Any PostgreSQL works as the CDC source; this schema is what `make run` and the
tests change. REPLICA IDENTITY FULL makes every update and delete carry the
whole old row, so the CDC consumer can say old -> new per field. The ERP's fee
module publishes its events through the transactional outbox (`hub_outbox`,
producers/outbox.py), which lives in this database beside the invoices.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Engine,
    ForeignKey,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    func,
    insert,
    select,
    text,
    update,
)

from core.settings import Settings
from producers.outbox import install_outbox, write_event
from schemas.events import Event, Invoice

metadata = MetaData()

students = Table(
    "students",
    metadata,
    Column("id", String(20), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("grade", String(10)),
    Column("section", String(5)),
    Column("email", String(200)),
    Column("phone", String(20)),
    Column("date_of_birth", Date),
    Column("notes", Text),  # can be large: stored out of line (TOAST)
    Column("updated_at", DateTime(timezone=True), server_default=func.now()),
)

guardians = Table(
    "guardians",
    metadata,
    Column("id", String(20), primary_key=True),
    Column("student_id", String(20), ForeignKey("students.id", ondelete="CASCADE")),
    Column("name", String(120), nullable=False),
    Column("relation", String(20)),
    Column("phone", String(20)),
    Column("email", String(200)),
)

invoices = Table(
    "invoices",
    metadata,
    Column("id", String(30), primary_key=True),
    Column("student_id", String(20), ForeignKey("students.id", ondelete="CASCADE")),
    Column("description", String(200), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False, server_default="INR"),
    Column("due_date", Date),
    Column("status", String(10), nullable=False, server_default="UNPAID"),
)

TABLES = ("students", "guardians", "invoices")

SEED_STUDENTS = [
    {
        "id": "12345",
        "name": "Rohan Sharma",
        "grade": "10",
        "section": "A",
        "email": "rohan.sharma@greenwood.school.example",
        "phone": "+919876543210",
    },
    {
        "id": "12346",
        "name": "Ananya Iyer",
        "grade": "9",
        "section": "B",
        "email": "ananya.iyer@greenwood.school.example",
        "phone": "+919812345678",
    },
]
SEED_GUARDIANS = [
    {
        "id": "G-1",
        "student_id": "12345",
        "name": "Mrs. Sharma",
        "relation": "Mother",
        "phone": "+919876543211",
        "email": "sharma@parents.example",
    },
]


def engine_for(dsn: str) -> Engine:
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    return create_engine(url, pool_pre_ping=True)


def install(engine: Engine, seed: bool = True, *, outbox_slot: str | None = None) -> None:
    """Create the tables (if missing), set REPLICA IDENTITY FULL, add the seed rows once;
    create the outbox and its relay's replication slot (`outbox_slot`, by default
    HUB_OUTBOX_SLOT_NAME), so no event is lost even before the relay first runs."""
    metadata.create_all(engine)
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f"ALTER TABLE {table} REPLICA IDENTITY FULL"))
        if seed and conn.execute(select(func.count()).select_from(students)).scalar_one() == 0:
            conn.execute(insert(students), SEED_STUDENTS)
            conn.execute(insert(guardians), SEED_GUARDIANS)
    # Read now, not cached: callers pass only the engine, and the slot must be
    # the one `hub cdc source` (same environment) will stream from.
    install_outbox(engine, slot_name=outbox_slot or Settings().outbox_slot_name)


def insert_student(engine: Engine, row: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(students), [row])


def update_student(engine: Engine, student_id: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(students)
            .where(students.c.id == student_id)
            .values(**values, updated_at=func.now())
        )


def delete_students(engine: Engine, ids: Iterable[str]) -> None:
    with engine.begin() as conn:
        conn.execute(students.delete().where(students.c.id.in_(list(ids))))


def issue_invoice(engine: Engine, invoice: Invoice, *events: Event) -> None:
    """What the ERP's fee module does on issuing an invoice: the `invoices` row, the
    Invoice event and any further events (its PaymentRequested), in ONE transaction.

    Either the invoice and its events are all committed, or none is; the outbox
    relay publishes the events only after the commit.
    """
    with engine.begin() as conn:
        conn.execute(
            insert(invoices),
            [
                {
                    "id": invoice.invoice_id,
                    "student_id": invoice.student_id,
                    "description": invoice.description,
                    "amount_minor": invoice.amount_minor,
                    "currency": invoice.currency,
                    "due_date": invoice.due_date,
                }
            ],
        )
        for event in (invoice, *events):
            write_event(conn, event)
