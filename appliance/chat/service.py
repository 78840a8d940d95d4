"""Answering a patient's question about their own sessions: the path `POST /api/v1/chat`, its
streaming twin and `appliance ask` share.

In order, each step able to end the answer:
1. The question is checked (length), and the patient's rate (questions in the last hour, counted
   in SQL from their own turns).
2. Crisis language bypasses everything else: the clinic's crisis text, an alert for the
   therapist, no model.
3. `patient_chat` consent, then scope: diagnosis, medication advice and clinical judgement get a
   kind redirect to the therapist.
4. Retrieval (this patient, released sessions, consent; time expressions resolved first).
5. The model answers from numbered excerpts it is told are data, not instructions.
6. The appliance keeps only the sentences the excerpts support, each with its citation; if none
   survives, the excerpts are quoted instead, or the answer is "I can't find that".
Question and answer are sealed into the conversation; the audit row holds ids and hashes only.
The text checks of steps 5 and 6 (which sentences stand) are `chat.vetting`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from appliance.audit.service import Actor, AuditEntry, record
from appliance.chat import grounding, safety, vetting
from appliance.chat.llm import ChatMessage, ChatModel, ModelBusy, ModelUnavailable
from appliance.chat.models import ChatTurn, Conversation, CrisisAlert
from appliance.chat.prompt import build_messages
from appliance.chat.schemas import ChatResponse, CitationPublic
from appliance.chat.vetting import adds_to as adds_to  # re-exported: callers check here
from appliance.chat.vetting import unknown_names as unknown_names
from appliance.consent import service as consent
from appliance.consent.models import Purpose
from appliance.crypto.keystore import KeyStore
from appliance.crypto.service import patient_cipher
from appliance.errors import Invalid, NotFound, TooManyRequests
from appliance.jobs.service import now_utc
from appliance.pipeline import documents
from appliance.retrieval.search import Hit, search
from appliance.settings import Settings

MAX_QUESTION_CHARS = 1000


@dataclass(frozen=True)
class Delta:
    """A verified piece of the answer, ready to show while the rest is generated."""

    text: str


@dataclass
class ChatContext:
    session: Session
    store: KeyStore
    settings: Settings
    actor: Actor
    model: ChatModel
    search_options: dict[str, Any] = field(default_factory=dict)  # e.g. today, embedder


def answer(context: ChatContext, patient_id: uuid.UUID, question: str, **kw: Any) -> ChatResponse:
    """The whole answer at once (the streaming path, consumed)."""
    final = None
    for event in respond(context, patient_id, question, **kw):
        if isinstance(event, ChatResponse):
            final = event
    assert final is not None
    return final


def respond(
    context: ChatContext,
    patient_id: uuid.UUID,
    question: str,
    conversation_id: uuid.UUID | None = None,
) -> Iterator[Delta | ChatResponse]:
    """Deltas of verified sentences while the model writes, then the final response."""
    session, options = context.session, context.settings.chat
    question = " ".join(question.split())
    if not question:
        raise Invalid("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise Invalid(f"the question is longer than {MAX_QUESTION_CHARS} characters")
    _check_rate(context, patient_id)
    crisis = safety.detect_crisis(question)
    if crisis is None:  # crisis language is answered (and alerted) whatever the consent
        consent.require(session, context.actor, patient_id, Purpose.patient_chat)
    conversation = _conversation(session, patient_id, conversation_id)
    history = _history(context, conversation)
    asked = _save_turn(context, conversation, "patient", question, None, [])
    if crisis is not None:
        session.add(
            CrisisAlert(
                patient_id=patient_id,
                turn_id=asked.id,
                category=crisis.category.value,
                rule=crisis.pattern_id,
            )
        )
        yield _refusal(context, conversation, question, options.crisis_text, "crisis", [])
        return
    scope = safety.detect_out_of_scope(question)
    if scope is not None:
        redirect = safety.redirect_text(scope.category)
        yield _refusal(context, conversation, question, redirect, "out_of_scope", [])
        return

    query = _retrieval_query(question, history)
    found = search(
        session,
        context.store,
        context.settings,
        patient_id,
        query,
        **context.search_options,
    )
    hits = found.hits
    session.commit()  # no transaction stays open while the model writes
    if not hits or unknown_names(question, hits):
        yield _refusal(context, conversation, question, grounding.NOT_FOUND, "not_found", [])
        return

    # Homework the therapist approved answers a homework question word for word: a checked,
    # structured item beats anything the model would make of the passages.
    kept = [grounding.quoted_fact(hit) for hit in hits if hit.kind == "fact"]
    for sentence in kept:
        yield Delta(sentence.text + " ")
    subject = vetting.without(found.time_filter.phrase, question)  # what is asked, not when
    if not kept:
        messages = build_messages(question, hits, history)
        try:
            for sentence in vetting.verified(context.model, messages, hits, subject):
                kept.append(sentence)
                yield Delta(sentence.text + " ")
        except (ModelUnavailable, ModelBusy):  # e.g. the LLM service died mid-answer
            _audit_failure(context, patient_id, question, hits, conversation.id)
            raise  # no assistant turn is stored: the words shown so far were no answer
    if not kept:  # the model's words failed the check: quote the passages themselves
        quoted = grounding.extractive_answer(
            subject,
            hits,
            max_sentences=2,
            follow=2,
            limit=3,
            accept=lambda text: adds_to(subject, text),
        )
        kept = list(quoted.sentences)
        if kept:
            yield Delta(" ".join(s.text for s in kept))
    if not kept:
        yield _refusal(context, conversation, question, grounding.NOT_FOUND, "not_found", hits)
        return
    citations = vetting.citations(kept)
    text = " ".join(s.text for s in kept)
    _save_turn(context, conversation, "assistant", text, None, citations)
    _audit(context, patient_id, question, hits, kept, None, conversation.id)
    context.session.commit()
    yield ChatResponse(
        answer=text,
        refused=False,
        reason=None,
        citations=citations,
        conversation_id=conversation.id,
    )


def _asked_model(hits: Sequence[Hit]) -> bool:
    """Whether the answer went through the model: not when approved facts answered it."""
    return bool(hits) and not any(hit.kind == "fact" for hit in hits)


def _retrieval_query(question: str, history: Sequence[ChatMessage]) -> str:
    """A short follow-up ("and the week before?") is searched together with the previous
    question, so it keeps that question's subject."""
    previous = [m.content for m in history if m.role == "user"]
    if previous and len(question.split()) <= 6:
        return f"{previous[-1]} {question}"
    return question


def _check_rate(context: ChatContext, patient_id: uuid.UUID) -> None:
    limit = context.settings.chat.questions_per_hour
    since = now_utc() - timedelta(hours=1)
    recent = context.session.exec(
        select(func.count(), func.min(ChatTurn.created_at)).where(
            ChatTurn.patient_id == patient_id,
            ChatTurn.role == "patient",
            col(ChatTurn.created_at) > since,
        )
    ).one()
    count, oldest = recent
    if count >= limit:
        wait = int((oldest + timedelta(hours=1) - now_utc()).total_seconds()) + 1
        _audit(context, patient_id, "", [], [], "rate_limited", None)
        context.session.commit()
        raise TooManyRequests(
            f"at most {limit} questions an hour; please try again later", max(1, wait)
        )


def _conversation(
    session: Session, patient_id: uuid.UUID, conversation_id: uuid.UUID | None
) -> Conversation:
    if conversation_id is None:
        row = Conversation(patient_id=patient_id)
        session.add(row)
        session.flush()
        return row
    found = session.exec(
        select(Conversation).where(
            Conversation.id == conversation_id, Conversation.patient_id == patient_id
        )
    ).first()
    if found is None:  # someone else's conversation reads as no conversation at all
        raise NotFound("no such conversation")
    return found


def _history(context: ChatContext, conversation: Conversation) -> list[ChatMessage]:
    """The conversation's last turns, oldest first, for follow-up questions."""
    turns = context.settings.chat.history_turns
    rows = context.session.exec(
        select(ChatTurn)
        .where(ChatTurn.conversation_id == conversation.id)
        .order_by(col(ChatTurn.created_at).desc())
        .limit(turns)
    ).all()
    cipher = patient_cipher(context.store, conversation.patient_id)
    history = []
    for row in reversed(rows):
        body = documents.open_sealed(cipher, ChatTurn.__tablename__, row.id, row.body_enc)
        role = "user" if row.role == "patient" else "assistant"
        history.append(ChatMessage(role, body["text"]))  # type: ignore[arg-type]
    return history


def _save_turn(
    context: ChatContext,
    conversation: Conversation,
    role: str,
    text: str,
    reason: str | None,
    citations: Sequence[CitationPublic],
) -> ChatTurn:
    turn_id = uuid.uuid4()
    cipher = patient_cipher(context.store, conversation.patient_id)
    body = {"text": text, "citations": [c.model_dump(mode="json") for c in citations]}
    row = ChatTurn(
        id=turn_id,
        conversation_id=conversation.id,
        patient_id=conversation.patient_id,
        role=role,
        reason=reason,
        body_enc=documents.seal(cipher, ChatTurn.__tablename__, turn_id, body),
    )
    conversation.updated_at = now_utc()
    context.session.add_all([row, conversation])
    context.session.flush()
    return row


def _refusal(
    context: ChatContext,
    conversation: Conversation,
    question: str,
    text: str,
    reason: str,
    hits: Sequence[Hit],
) -> ChatResponse:
    _save_turn(context, conversation, "assistant", text, reason, [])
    _audit(context, conversation.patient_id, question, hits, [], reason, conversation.id)
    context.session.commit()
    return ChatResponse(
        answer=text, refused=True, reason=reason, citations=[], conversation_id=conversation.id
    )


def _audit_failure(
    context: ChatContext,
    patient_id: uuid.UUID,
    question: str,
    hits: Sequence[Hit],
    conversation_id: uuid.UUID,
) -> None:
    """The answer broke off (model service gone): audited as a failure, without asking the
    unreachable service for its model id."""
    context.session.rollback()
    record(
        context.session,
        context.actor,
        AuditEntry(
            "chat.answer",
            "failure",
            "patient",
            str(patient_id),
            patient_id,
            {
                "question_sha256": hashlib.sha256(question.encode()).hexdigest(),
                "retrieved": [str(hit.id) for hit in hits],
                "cited": [],
                "model": None,
                "reason": "model_unavailable",
                "conversation_id": str(conversation_id),
            },
        ),
    )
    context.session.commit()


def _audit(
    context: ChatContext,
    patient_id: uuid.UUID,
    question: str,
    hits: Sequence[Hit],
    kept: Sequence[grounding.GroundedSentence],
    reason: str | None,
    conversation_id: uuid.UUID | None,
) -> None:
    record(
        context.session,
        context.actor,
        AuditEntry(
            "chat.answer",
            "denied" if reason == "rate_limited" else "success",
            "patient",
            str(patient_id),
            patient_id,
            {
                "question_sha256": hashlib.sha256(question.encode()).hexdigest(),
                "retrieved": [str(hit.id) for hit in hits],
                "cited": sorted({str(s.citation.passage_id) for s in kept}),
                "model": context.model.model_id if _asked_model(hits) else None,
                "reason": reason,
                "conversation_id": str(conversation_id) if conversation_id else None,
            },
        ),
    )
