"""The mail outbox in MongoDB: mail is queued with the change that causes it and sent from here.

A message is kept only until it is sent or given up: then its body goes and its record (kind,
recipient, status, attempts, error) stays `mail.keep_sent_days` for heads to check.

Mail is claimed in small batches with one update that marks it with the claim's own token (status
`sending`, a lease, attempts + 1), so one instance sends a mail even when several run; a claim whose lease ran out (the sender died mid-send) is claimed
again. Marking it sent or retried is guarded by the attempt number, so a stale sender never
overwrites a newer one's outcome.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any

import attrs
from bson import Binary, ObjectId

from domain.infra.mongo import Database, Document, at_most, index, insert_many_once

index("mail_outbox", ("status", 1), ("next_attempt_at", 1), name="due")
index("mail_outbox", ("status", 1), ("lease_until", 1), name="leased")
index("mail_outbox", ("status", 1), ("finished_at", -1), name="finished")
index("mail_outbox", ("claim", 1), name="claim")


class MailStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


@attrs.frozen
class OutboxMail:
    id: str
    kind: str
    sender: str
    recipient: str
    message: bytes
    attempts: int


@attrs.frozen
class NewMail:
    kind: str
    user_id: str
    sender: str
    recipient: str
    message: bytes


@attrs.frozen
class MailFailure:
    id: str
    kind: str
    recipient: str
    status: MailStatus
    attempts: int
    error: str
    at: datetime


def _failure(doc: Document) -> MailFailure:
    return MailFailure(
        id=str(doc["_id"]),
        kind=doc["kind"],
        recipient=doc["recipient"],
        status=MailStatus(doc["status"]),
        attempts=doc["attempts"],
        error=doc["last_error"] or "",
        at=doc["finished_at"] or doc["next_attempt_at"],
    )


class MailOutbox:
    def __init__(self, db: Database) -> None:
        self._mail = db["mail_outbox"]

    async def queue(self, mails: list[NewMail], now: datetime) -> list[str]:
        """Queue mails in one round trip (the mails one change causes)."""
        docs = await insert_many_once(self._mail, [{
            "kind": m.kind, "user_id": ObjectId(m.user_id), "sender": m.sender, "recipient": m.recipient,
            "message": Binary(m.message), "status": MailStatus.QUEUED.value, "attempts": 0,
            "next_attempt_at": now, "lease_until": None, "last_error": None, "created_at": now,
            "finished_at": None, "claim": None,
        } for m in mails])  # fmt: skip
        return [str(doc["_id"]) for doc in docs]

    async def claim(self, *, now: datetime, lease_s: float, limit: int) -> list[OutboxMail]:
        """Up to limit mails that are due (or whose sender died mid-send), leased to this caller: a
        claim marks them with a token of its own in one update, so two instances never share one."""
        due: Document = {"$or": [{"status": MailStatus.QUEUED.value, "next_attempt_at": at_most(now)},
                                 {"status": MailStatus.SENDING.value, "lease_until": {"$lt": now}}]}  # fmt: skip
        ids = [
            doc["_id"]
            async for doc in self._mail.find(due, {"_id": 1}).sort("next_attempt_at", 1).limit(limit)
        ]
        if not ids:
            return []
        token = ObjectId()
        await self._mail.update_many(
            {"_id": {"$in": ids}, **due},
            {"$set": {"status": MailStatus.SENDING.value, "claim": token,
                      "lease_until": now + timedelta(seconds=lease_s)}, "$inc": {"attempts": 1}},
        )  # fmt: skip
        return [
            OutboxMail(
                id=str(doc["_id"]),
                kind=doc["kind"],
                sender=doc["sender"],
                recipient=doc["recipient"],
                message=bytes(doc["message"]),
                attempts=doc["attempts"],
            )
            async for doc in self._mail.find({"claim": token}).sort("next_attempt_at", 1)
        ]

    async def _settle(self, mail: OutboxMail, fields: dict[str, Any], *, final: bool = False) -> bool:
        """final: the mail will not be sent again, so its message goes (a reset link in it must not
        stay readable in the database, or in its backups); what it was, to whom and how it ended
        stay for heads to check."""
        update: dict[str, Any] = {"$set": {**fields, "lease_until": None}}
        if final:
            update["$unset"] = {"message": ""}
        result = await self._mail.update_one(
            {"_id": ObjectId(mail.id), "status": MailStatus.SENDING.value, "attempts": mail.attempts}, update
        )
        return result.modified_count == 1

    async def sent(self, mail: OutboxMail, now: datetime) -> bool:
        return await self._settle(mail, {"status": MailStatus.SENT.value, "finished_at": now}, final=True)

    async def retry(self, mail: OutboxMail, error: str, at: datetime) -> bool:
        return await self._settle(
            mail, {"status": MailStatus.QUEUED.value, "next_attempt_at": at, "last_error": error[:500]}
        )

    async def give_up(self, mail: OutboxMail, error: str, now: datetime) -> bool:
        return await self._settle(
            mail,
            {"status": MailStatus.FAILED.value, "last_error": error[:500], "finished_at": now},
            final=True,
        )

    async def next_due(self) -> datetime | None:
        doc = await self._mail.find_one(
            {"status": MailStatus.QUEUED.value}, {"next_attempt_at": 1}, sort=[("next_attempt_at", 1)]
        )
        return doc["next_attempt_at"] if doc else None

    async def counts(self) -> dict[str, int]:
        """Mail by status, in one read: counted one status at a time, a mail the sender moves from
        queued to sending and back (a relay that is down) could be missed by both counts."""
        counts = {status.value: 0 for status in MailStatus}
        async for row in await self._mail.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}]):
            counts[str(row["_id"])] = int(row["n"])
        return counts

    async def troubles(self, limit: int = 10) -> list[MailFailure]:
        """The newest mail that failed for good, or is waiting to be tried again after an error."""
        query: Document = {"$or": [{"status": MailStatus.FAILED.value},
                                   {"status": MailStatus.QUEUED.value, "last_error": {"$ne": None}}]}  # fmt: skip
        cursor = self._mail.find(query).sort([("created_at", -1)]).limit(limit)
        return [_failure(doc) async for doc in cursor]

    async def purge(self, before: datetime) -> int:
        """Sent and failed mail older than `before` goes (it was kept for heads to check)."""
        result = await self._mail.delete_many(
            {
                "status": {"$in": [MailStatus.SENT.value, MailStatus.FAILED.value]},
                "finished_at": {"$lt": before},
            }
        )
        return result.deleted_count
