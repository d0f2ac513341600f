"""The review workspace, with the admin's look, under ``/admin/work/reviews/``:

- ``reviews/``: the queue of unresolved cases, soonest SLA first and then the riskiest, with
  filters (channel, reason, overdue, assigned to me), "Claim" per row and "Approve selected"
  for the low-risk ones (``reviews.services.bulk_approve_refusal`` says which are);
- ``reviews/<id>/``: one case with everything a reviewer needs on one page
  (``reviews.selectors.case_context``) and its decisions: approve, reject (reason required),
  escalate (note required), claim and assign. After a decision the next case in queue order
  opens. Keyboard shortcuts: ``reviews/static/reviews/workspace.js``.

Viewing needs ``reviews.view_reviewcase`` (customer service, reviewers, ops); every change needs
``orders.review_order`` too (customer service reads only: its POSTs are 403). Every change goes
through a service in ``reviews.services``, which audits it on the order's timeline.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from channels.models import SalesChannel
from orders.actors import Actor
from orders.errors import DomainError, PermissionRefused
from reviews import selectors
from reviews.models import PERM_REVIEW, ReviewCase
from reviews.selectors import REASON_KINDS, QueueFilters
from reviews.services import (
    DECISIONS,
    review_case_assign,
    review_case_claim,
    review_case_decide,
    review_cases_bulk_approve,
)

PERM_VIEW = "reviews.view_reviewcase"
DONE = {"approve": "approved", "reject": "rejected", "escalate": "escalated"}


def _need(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {**admin.site.each_context(request), "title": title, **extra}


def _with(url: str, filters: QueueFilters) -> str:
    query = filters.as_query()
    return f"{url}?{urlencode(query)}" if query else url


def _case_url(case_id: int, filters: QueueFilters) -> str:
    return _with(reverse("work:review_case", args=[case_id]), filters)


def _queue_url(filters: QueueFilters) -> str:
    return _with(reverse("work:reviews"), filters)


def _number(case: ReviewCase) -> str:
    order = case.order
    return order.order_number or order.external_id


def _int(value: Any) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else None


# --- the queue ---------------------------------------------------------------------------------
@staff_member_required
def queue_page(request: HttpRequest) -> HttpResponse:
    _need(request, PERM_VIEW)
    filters = QueueFilters.from_query(request.GET)
    if request.method == "POST":
        _need(request, PERM_REVIEW)
        _queue_post(request)
        return HttpResponseRedirect(_queue_url(filters))
    now = timezone.now()
    cases = list(selectors.review_queue(filters=filters, user=request.user, now=now))
    rows = [{"case": c, "number": _number(c), "overdue": c.sla_due_at < now,
             "url": _case_url(c.pk, filters),
             "claimable": c.status in ("open", "escalated") and c.assignee_id in (
                 None, request.user.pk)}
            for c in cases]  # fmt: skip
    context = _context(
        request, "Review queue", rows=rows, filters=filters, now=now,
        channels=SalesChannel.objects.order_by("slug").values_list("slug", flat=True),
        reasons=[(key, words) for key, (words, _text) in REASON_KINDS.items()],
        can_review=request.user.has_perm(PERM_REVIEW),
        queue_url=_queue_url(filters),
    )  # fmt: skip
    return TemplateResponse(request, "admin/reviews/workspace/queue.html", context)


def _queue_post(request: HttpRequest) -> None:
    actor = Actor.for_user(request.user)
    claim = _int(request.POST.get("claim"))
    if claim is not None:
        try:
            case = review_case_claim(case_id=claim, actor=actor)
            messages.success(request, f"Case {case.pk} is yours now.")
        except PermissionRefused as exc:
            raise PermissionDenied(str(exc)) from exc
        except DomainError as exc:
            messages.error(request, str(exc))
        return
    if request.POST.get("action") != "bulk_approve":
        messages.error(request, "Pick an action: claim a case or approve the selected ones.")
        return
    ids = [i for i in (_int(v) for v in request.POST.getlist("case")) if i is not None]
    if not ids:
        messages.error(request, "Select the cases to approve first.")
        return
    try:
        approved, refused = review_cases_bulk_approve(case_ids=ids, actor=actor)
    except PermissionRefused as exc:
        raise PermissionDenied(str(exc)) from exc
    if approved:
        messages.success(request, f"Approved {len(approved)} case(s): "
                                  f"{', '.join(str(c.pk) for c in approved)}.")  # fmt: skip
    if refused:
        messages.error(request, "Not approved (only low-risk cases are approved in bulk): "
                       + "; ".join(f"case {pk}: {why}" for pk, why in refused) + ".")  # fmt: skip


# --- one case ----------------------------------------------------------------------------------
@staff_member_required
def case_page(request: HttpRequest, case_id: int) -> HttpResponse:
    _need(request, PERM_VIEW)
    filters = QueueFilters.from_query(request.GET)
    case = get_object_or_404(
        ReviewCase.objects.select_related("order", "order__channel", "assignee", "decided_by"),
        pk=case_id,
    )
    if request.method == "POST":
        _need(request, PERM_REVIEW)
        return _case_post(request, case, filters)
    prev_id, next_id = selectors.review_queue_neighbours(
        case_id=case.pk, filters=filters, user=request.user
    )
    can_review = request.user.has_perm(PERM_REVIEW)
    context = _context(
        request, f"Review case {case.pk}: order {_number(case)}", case=case,
        ctx=selectors.case_context(case, request.user), number=_number(case),
        filters=filters, queue_url=_queue_url(filters),
        next_url=_case_url(next_id, filters) if next_id else "",
        prev_url=_case_url(prev_id, filters) if prev_id else "",
        can_review=can_review, can_decide=can_review and case.is_unresolved,
        mine=case.assignee_id == request.user.pk,
        reviewers=selectors.reviewers_list() if can_review and case.is_unresolved else [],
        order_url=reverse("admin:orders_order_change", args=[case.order_id]),
        overdue=case.is_overdue,
    )  # fmt: skip
    return TemplateResponse(request, "admin/reviews/workspace/case.html", context)


def _case_post(request: HttpRequest, case: ReviewCase, filters: QueueFilters) -> HttpResponse:
    actor = Actor.for_user(request.user)
    here = _case_url(case.pk, filters)
    decision = request.POST.get("decision", "")
    try:
        if request.POST.get("action") == "claim":
            review_case_claim(case_id=case.pk, actor=actor)
            messages.success(request, f"Case {case.pk} is yours now.")
            return HttpResponseRedirect(here)
        if request.POST.get("action") == "assign":
            assignee = _int(request.POST.get("assignee"))
            if assignee is None:
                messages.error(request, "Pick the reviewer to assign the case to.")
                return HttpResponseRedirect(here)
            moved = review_case_assign(case_id=case.pk, actor=actor, assignee_id=assignee)
            who = moved.assignee.get_username() if moved.assignee else ""
            messages.success(request, f"Case {case.pk} assigned to {who}.")
            return HttpResponseRedirect(here)
        if decision not in DECISIONS:
            messages.error(request, "Pick a decision: approve, reject or escalate.")
            return HttpResponseRedirect(here)
        review_case_decide(
            case_id=case.pk, actor=actor, decision=decision,
            note=request.POST.get("note", ""),
            expected_status=request.POST.get("seen_status") or None,
        )  # fmt: skip
    except PermissionRefused as exc:
        raise PermissionDenied(str(exc)) from exc
    except DomainError as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(here)
    messages.success(request, f"Case {case.pk} (order {_number(case)}) {DONE[decision]}.")
    _prev, next_id = selectors.review_queue_neighbours(
        case_id=case.pk, filters=filters, user=request.user
    )
    if next_id is None:
        messages.info(request, "No more cases in this queue.")
        return HttpResponseRedirect(_queue_url(filters))
    return HttpResponseRedirect(_case_url(next_id, filters))


__all__ = ["case_page", "queue_page"]
