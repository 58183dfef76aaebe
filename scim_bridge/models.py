"""The stored shape: tenants, tokens, users with their multi-valued rows, groups, memberships,
application sessions, signing keys, the revocation/audit log and the SCIM request log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    FetchedValue,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .db import Base, UTCDateTime, new_id, utcnow
from .scim.schema import ENTERPRISE, GROUP, USER, USER_VALUE_ATTRIBUTES, Attribute, stored_length

ID = String(64)
#: Tenant and token names (and the token name a request log entry keeps).
NAME_LENGTH = 200


def _sized(attributes: tuple[Attribute, ...], column: str) -> String:
    """A column exactly as long as the SCIM attributes stored in it may be (scim/schema.py),
    so the limits documents are checked against and the database's are one definition."""
    return String(stored_length(attributes, column))


_USER = tuple(a for a in (*USER.attributes, *ENTERPRISE.attributes) if not a.multi_valued)
_VALUES = tuple(a for a in USER.attributes if a.name in USER_VALUE_ATTRIBUTES)
#: The tenant an empty database gets, so a single-tenant install never names one.
DEFAULT_TENANT = "default"


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_api_tokens_tenant_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: Unique per tenant: two customers may both call their IdP token "okta".
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    scope: Mapped[str] = mapped_column(String(20))
    #: SHA-256 of the token; the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    tenant: Mapped[Tenant] = relationship(lazy="joined")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_name_key", name="uq_users_tenant_user_name"),
        UniqueConstraint("tenant_id", "external_id", name="uq_users_tenant_external_id"),
        Index("ix_users_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_name: Mapped[str] = mapped_column(_sized(_USER, "user_name"))
    #: userName folded for case-insensitive uniqueness and lookup (RFC 7643 §4.1.1).
    user_name_key: Mapped[str] = mapped_column(_sized(_USER, "user_name"))
    external_id: Mapped[str | None] = mapped_column(_sized(_USER, "external_id"))
    #: ``None`` when an IdP removed the attribute: unassigned, which does not deny access.
    active: Mapped[bool | None] = mapped_column(Boolean, default=True)
    display_name: Mapped[str | None] = mapped_column(_sized(_USER, "display_name"))
    nick_name: Mapped[str | None] = mapped_column(_sized(_USER, "nick_name"))
    profile_url: Mapped[str | None] = mapped_column(_sized(_USER, "profile_url"))
    title: Mapped[str | None] = mapped_column(_sized(_USER, "title"))
    user_type: Mapped[str | None] = mapped_column(_sized(_USER, "user_type"))
    preferred_language: Mapped[str | None] = mapped_column(_sized(_USER, "preferred_language"))
    locale: Mapped[str | None] = mapped_column(_sized(_USER, "locale"))
    timezone: Mapped[str | None] = mapped_column(_sized(_USER, "timezone"))
    name_formatted: Mapped[str | None] = mapped_column(_sized(_USER, "name_formatted"))
    name_family: Mapped[str | None] = mapped_column(_sized(_USER, "name_family"))
    name_given: Mapped[str | None] = mapped_column(_sized(_USER, "name_given"))
    name_middle: Mapped[str | None] = mapped_column(_sized(_USER, "name_middle"))
    name_prefix: Mapped[str | None] = mapped_column(_sized(_USER, "name_prefix"))
    name_suffix: Mapped[str | None] = mapped_column(_sized(_USER, "name_suffix"))
    employee_number: Mapped[str | None] = mapped_column(_sized(_USER, "employee_number"))
    cost_center: Mapped[str | None] = mapped_column(_sized(_USER, "cost_center"))
    organization: Mapped[str | None] = mapped_column(_sized(_USER, "organization"))
    division: Mapped[str | None] = mapped_column(_sized(_USER, "division"))
    department: Mapped[str | None] = mapped_column(_sized(_USER, "department"))
    manager_id: Mapped[str | None] = mapped_column(_sized(_USER, "manager_id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_modified: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    @property
    def is_active(self) -> bool:
        """Only an explicit ``active: false`` deactivates (RFC 7643 leaves unassigned open)."""
        return self.active is not False

    values: Mapped[list[UserValue]] = relationship(
        back_populates="user",
        cascade="all, delete-orphan",
        order_by="(UserValue.attribute, UserValue.position)",
        passive_deletes=True,
    )


class UserValue(Base):
    """One entry of a multi-valued complex attribute (emails, phoneNumbers, addresses, ...)."""

    __tablename__ = "user_values"
    __table_args__ = (
        Index("ix_user_values_attribute_value_key", "attribute", "value_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    attribute: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)
    value: Mapped[str | None] = mapped_column(Text)
    value_key: Mapped[str | None] = mapped_column(_sized(_VALUES, "value"))
    display: Mapped[str | None] = mapped_column(_sized(_VALUES, "display"))
    type: Mapped[str | None] = mapped_column(_sized(_VALUES, "type"))
    primary: Mapped[bool | None] = mapped_column(Boolean)
    formatted: Mapped[str | None] = mapped_column(Text)
    street_address: Mapped[str | None] = mapped_column(_sized(_VALUES, "street_address"))
    locality: Mapped[str | None] = mapped_column(_sized(_VALUES, "locality"))
    region: Mapped[str | None] = mapped_column(_sized(_VALUES, "region"))
    postal_code: Mapped[str | None] = mapped_column(_sized(_VALUES, "postal_code"))
    country: Mapped[str | None] = mapped_column(_sized(_VALUES, "country"))

    user: Mapped[User] = relationship(back_populates="values")


class Group(Base):
    __tablename__ = "groups"
    __table_args__ = (
        UniqueConstraint("tenant_id", "display_name_key", name="uq_groups_tenant_display_name"),
        UniqueConstraint("tenant_id", "external_id", name="uq_groups_tenant_external_id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    display_name: Mapped[str] = mapped_column(_sized(GROUP.attributes, "display_name"))
    display_name_key: Mapped[str] = mapped_column(_sized(GROUP.attributes, "display_name"))
    external_id: Mapped[str | None] = mapped_column(_sized(GROUP.attributes, "external_id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_modified: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)


class Membership(Base):
    """A user's membership in a group: one row each, changed by SQL deltas only."""

    __tablename__ = "memberships"

    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    #: The member's ``display`` as the IdP sent it (RFC 7643 §4.2), echoed back unchanged.
    display: Mapped[str | None] = mapped_column(_sized(GROUP.attributes, "display"))


class AppSession(Base):
    """A session of the application's user; revocation marks it, never deletes it."""

    __tablename__ = "app_sessions"
    __table_args__ = (Index("ix_app_sessions_user_live", "user_id", "revoked_at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[int] = mapped_column(Integer)
    #: No foreign key: the session outlives a deleted user as an audit record.
    user_id: Mapped[str] = mapped_column(ID)
    client: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SigningKey(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    private_pem: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When a newer key took over; published until every token it signed has expired.
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class DeploymentSetting(Base):
    """A fact every instance of one deployment must agree on, fixed on first start (the token
    issuer, so a token one instance signed is valid at the next)."""

    __tablename__ = "deployment_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Event(Base):
    """The revocation and audit log. Its commit order is (``xid``, ``id``), the feed's cursor
    (services/feed.py); ``id`` alone is the order within one transaction."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_tenant_user", "tenant_id", "user_id"),
        Index("ix_events_tenant_type", "tenant_id", "type"),
        Index("ix_events_tenant_commit_order", "tenant_id", "xid", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(ID)
    group_id: Mapped[str | None] = mapped_column(ID)
    group_name: Mapped[str | None] = mapped_column(String(512))
    actor: Mapped[str] = mapped_column(String(256))
    detail: Mapped[str | None] = mapped_column(Text)
    session_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    #: The request (or CLI action) that caused the event: shared by every event it caused.
    txn: Mapped[str | None] = mapped_column(String(128))
    #: The user's primary email (else their first) when the event was recorded: what an SSF
    #: stream of format ``email`` names them by, the same on every retry and after a deletion.
    user_email: Mapped[str | None] = mapped_column(_sized(_VALUES, "value"))
    #: The writing transaction's id on PostgreSQL, 0 on SQLite and for rows older than the
    #: column: the database fills it in (migration 0003), so no INSERT can leave it out.
    xid: Mapped[int] = mapped_column(BigInteger, server_default=FetchedValue())


class RequestLogEntry(Base):
    """One SCIM request as an admin needs it to answer "why did my sync fail?"."""

    __tablename__ = "request_log"
    __table_args__ = (Index("ix_request_log_tenant_id", "tenant_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(Integer)
    token_name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(2048))
    status: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[float] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Receiver(Base):
    """Somewhere events go out to: a webhook endpoint, a back-channel logout client or an SSF
    stream. ``config`` is JSON text the receiver's sender reads (a webhook's secrets)."""

    __tablename__ = "receivers"
    __table_args__ = (Index("ix_receivers_tenant_kind", "tenant_id", "kind"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: ``webhook``, ``logout_client`` or ``ssf_stream``: picks the sender (events/senders.py).
    kind: Mapped[str] = mapped_column(String(32))
    url: Mapped[str | None] = mapped_column(String(2048))
    #: A webhook's label or a logout client's ``client_id``.
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    config: Mapped[str] = mapped_column(Text, default="{}")
    #: ``enabled`` delivers; ``paused`` holds deliveries; ``disabled`` neither holds nor sends.
    state: Mapped[str] = mapped_column(String(16), default="enabled")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReceiverEventType(Base):
    """One topic (events/topics.py) a receiver subscribes to: subscription is a join."""

    __tablename__ = "receiver_event_types"

    receiver_id: Mapped[str] = mapped_column(
        ForeignKey("receivers.id", ondelete="CASCADE"), primary_key=True
    )
    event_type: Mapped[str] = mapped_column(String(64), primary_key=True)


class RemovedSubject(Base):
    """A user an SSF stream removed (SSF 1.0 §8.1.3.3): the outbox adds no delivery of that
    user's events for the stream (a lookup by this primary key) until the stream adds them
    again. Goes with the stream, and with the user."""

    __tablename__ = "stream_removed_subjects"

    receiver_id: Mapped[str] = mapped_column(
        ForeignKey("receivers.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    removed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One event on its way to one receiver (the transactional outbox row). ``subject`` (the
    user or group id) is the ordering key: a row is never sent while an earlier row of the same
    receiver and subject is still pending or retrying."""

    __tablename__ = "deliveries"
    __table_args__ = (
        # Only open rows, in claim order: a claim reads the head of this index and stops, and
        # delivered rows (the vast majority, kept as history) never slow it down.
        Index("ix_deliveries_due", "next_attempt_at", "id",
              sqlite_where=text("state IN ('pending', 'retrying')"),
              postgresql_where=text("state IN ('pending', 'retrying')")),
        Index("ix_deliveries_order", "receiver_id", "subject", "id"),
        Index("ix_deliveries_event", "event_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    receiver_id: Mapped[str] = mapped_column(ForeignKey("receivers.id", ondelete="CASCADE"))
    #: The receiver-facing type (``session.revoked``, ...) this row carries.
    topic: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(ID, default="")
    #: ``pending``, ``retrying``, ``delivered`` or ``dead``.
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When an operator last sent a dead row back; the give-up period counts from here then.
    replayed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The ``jti``s an RFC 8936 poll receiver acknowledged of this row's SETs, while others
    #: are still unacknowledged (a row carries one SET per ended session).
    acked: Mapped[list[str] | None] = mapped_column(JSON)


class DeliveryAttempt(Base):
    """One try at sending a delivery: when, what the receiver answered, how long it took."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float] = mapped_column()
