"""`switchboard up` keeps the stack running: a SIGKILLed service comes back while customers keep writing,
several instances of a service are supervised one by one, and a crash loop stops everything."""

from __future__ import annotations

import asyncio
import re
import signal
import smtplib
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import httpx
import psutil
import pytest

from shared.settings import EXAMPLE_CONFIG
from shared.topics import TICKETS, Topics
from switchboard.bench.runner import unlimited_capacity
from tests.conftest import SLACK_TOKEN
from tests.e2e.running_stack import RunningStack, up_env
from tests.support import decoded, read_topic, topic_size

pytestmark = pytest.mark.e2e

# Killed in this order, each once; intake-http last, as its clients must retry through its restart.
KILLED_IN_TURN = ["router", "sla", "notifier", "intake-smtp", "intake-http"]
FORMS_PER_SECOND = 20  # offered; a 2-core box shared with other work absorbs it
FORMS_BETWEEN_KILLS = 30
TICKET_ID = re.compile(r"\bSB-\d+\b")
EVERY_TICKET_HAS = ("ticket.created", "ticket.assigned", "sla.deadline_set")


@dataclass
class Failure:
    during: str
    error: str


@dataclass
class Customers:
    """Posts contact forms to intake-http at a steady rate, each retried with its Idempotency-Key until accepted."""

    base_url: str
    tickets: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # key → ticket IDs answered
    failures: list[Failure] = field(default_factory=list)
    during: str = "start"  # which service the test is killing, for the failures
    stop: threading.Event = field(default_factory=threading.Event)
    accepted: threading.Condition = field(default_factory=threading.Condition)

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                self._submit(client, str(uuid.uuid4()))
                self.stop.wait(1 / FORMS_PER_SECOND)

    def _submit(self, client: httpx.Client, key: str) -> None:
        n = len(self.tickets)
        form = {"name": f"C{n}", "email": f"c{n}@example.com", "subject": f"Issue {n}", "message": "help"}
        while True:
            try:
                response = client.post(f"{self.base_url}/v1/forms/contact", json=form, headers={"Idempotency-Key": key})
                if response.status_code == 202:
                    with self.accepted:
                        self.tickets[key].add(response.json()["ticket_id"])
                        self.accepted.notify_all()
                    return
                self.failures.append(Failure(self.during, f"{response.status_code} {response.text[:200]}"))
            except httpx.TransportError as error:
                self.failures.append(Failure(self.during, repr(error)))
            # The same key again, as a browser retrying a submission would: never a second ticket.
            self.stop.wait(0.2)

    def wait_for_more(self, count: int, timeout: float = 60) -> None:
        with self.accepted:
            target = len(self.tickets) + count
            if not self.accepted.wait_for(lambda: len(self.tickets) >= target, timeout):
                raise AssertionError(f"intake accepted {len(self.tickets)} forms, not {target}, in {timeout}s")


def distinct_events(events: list[dict], event_type: str) -> dict[str, set[str]]:
    """Ticket ID → the distinct IDs of its events of `event_type` (a redelivery repeats the same ID)."""
    found: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event["type"] == event_type:
            found[event["ticket_id"]].add(event["event_id"])
    return found


def is_announcement(call) -> bool:
    """A ticket's card in its team channel (DMs go to user IDs, later messages into the card's thread)."""
    return call.args["channel"].startswith("C") and "thread_ts" not in call.args


def announcements(fake_slack) -> dict[str, int]:
    """Ticket ID → how many times it was announced in its team channel."""
    counts: dict[str, int] = defaultdict(int)
    for call in fake_slack.calls_to("chat.postMessage"):
        if call.ok and is_announcement(call):
            counts[TICKET_ID.search(call.args["text"])[0]] += 1
    return counts


def ticket_events(bootstrap: str, tickets: set[str], timeout: float = 120) -> list[dict]:
    """Every event on the ticket topic, once each of `tickets` has every event of EVERY_TICKET_HAS."""
    topic = Topics("").name(TICKETS)
    deadline = time.monotonic() + timeout
    while True:
        size = asyncio.run(topic_size(bootstrap, topic))
        events = decoded(asyncio.run(read_topic(bootstrap, topic, at_least=size)))
        missing = {kind: tickets - set(distinct_events(events, kind)) for kind in EVERY_TICKET_HAS}
        if not any(missing.values()):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"events missing after {timeout}s: {missing}")
        time.sleep(1)


def send_mail(port: int) -> None:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "Dora <dora@example.org>", "support@example.com", "Invoice question"
    mail["Message-ID"] = f"<{uuid.uuid4()}@example.org>"
    mail.set_content("Hello, my invoice looks wrong.")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.send_message(mail)  # raises unless intake-smtp answered 250


@pytest.fixture
def own_stack(tmp_path: Path, fake_slack) -> Iterator[RunningStack]:
    # Agents with room for every form this test posts: it checks that each ticket is assigned once.
    config = unlimited_capacity(EXAMPLE_CONFIG, tmp_path)
    env = up_env(
        tmp_path / "data",
        SWITCHBOARD_SLACK_BOT_TOKEN=SLACK_TOKEN,
        SWITCHBOARD_SLACK_API_URL=fake_slack.base_url,
        SWITCHBOARD_CONFIG=str(config),
    )
    running = RunningStack(env)
    try:
        yield running
    finally:
        running.kill()


def test_each_service_killed_under_load_comes_back_and_nothing_is_lost_or_doubled(own_stack: RunningStack, fake_slack):
    stack = own_stack
    stack.wait_until_up()
    ready_urls = stack.ready_urls()
    customers = Customers(stack.base_url)
    poster = threading.Thread(target=customers.run, name="customers")
    poster.start()
    try:
        for name in KILLED_IN_TURN:
            customers.wait_for_more(FORMS_BETWEEN_KILLS)
            victim = stack.instance(name)
            customers.during = name
            output_seen = len(stack.output)
            victim.send_signal(signal.SIGKILL)
            stack.wait_for_line(rf"^{name} exited \(signal SIGKILL\) after \d+ s; restart 1 at ", 30, output_seen)
            stack.wait_for_line(rf"^{name} is back \(restart 1\): ", 60, output_seen)
            ready = httpx.get(ready_urls[name], timeout=10)
            assert ready.status_code == 200
            assert ready.json()["restarts"] == 1 and ready.json()["previous_exit"] == "signal SIGKILL"
            assert stack.instance(name).pid != victim.pid
            if name == "intake-smtp":
                send_mail(stack.smtp_port)
            customers.during = "after " + name
        customers.wait_for_more(FORMS_BETWEEN_KILLS)
    finally:
        customers.stop.set()
        poster.join(timeout=60)

    assert [failure for failure in customers.failures if failure.during != "intake-http"] == [], (
        "intake answered every form while another service was down"
    )
    assert all(len(ids) == 1 for ids in customers.tickets.values()), "a retried key always got its first ticket"
    form_tickets = {ticket_id for ids in customers.tickets.values() for ticket_id in ids}
    assert len(form_tickets) == len(customers.tickets), "one ticket per submission"

    fake_slack.wait_for_calls_sync(
        "chat.postMessage", count=len(form_tickets) + 1, timeout=180, predicate=is_announcement
    )  # every form and the mail
    all_tickets = set(announcements(fake_slack))
    assert all_tickets > form_tickets and len(all_tickets) == len(form_tickets) + 1
    events = ticket_events(stack.kafka_bootstrap(), all_tickets)
    for event_type in EVERY_TICKET_HAS:
        per_ticket = distinct_events(events, event_type)
        assert set(per_ticket) == all_tickets, f"every ticket has its {event_type}"
        assert {ticket: ids for ticket, ids in per_ticket.items() if len(ids) > 1} == {}, f"one {event_type} each"

    assert stack.interrupt() == 0, "\n".join(stack.output)
    assert set(announcements(fake_slack).values()) == {1}, "each ticket announced once in Slack"


@pytest.fixture
def scaled_stack(settings, tmp_path: Path, fake_slack) -> Iterator[RunningStack]:
    """Two routers and two notifiers on the test session's Kafka and Redis."""
    env = up_env(
        tmp_path / "scaled",
        SWITCHBOARD_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        SWITCHBOARD_REDIS_URL=settings.redis_url,
        SWITCHBOARD_TOPIC_PREFIX=settings.topic_prefix,
        SWITCHBOARD_SLACK_BOT_TOKEN=SLACK_TOKEN,
        SWITCHBOARD_SLACK_API_URL=fake_slack.base_url,
    )
    running = RunningStack(env, "--scale", "router=2,notifier=2")
    try:
        yield running
    finally:
        running.kill()


def test_scaled_instances_are_supervised_one_by_one_and_a_crash_loop_stops_everything(
    scaled_stack: RunningStack, settings, fake_slack
):
    stack = scaled_stack
    stack.wait_until_up()
    ready_urls = stack.ready_urls()
    assert set(ready_urls) == {"intake-http", "intake-smtp", "router-1", "router-2", "sla", "notifier-1", "notifier-2"}
    for name, url in ready_urls.items():
        assert httpx.get(url, timeout=10).status_code == 200, name
        assert (stack.data_dir / "logs" / f"{name}.log").exists()
    assert len({url for url in ready_urls.values()}) == len(ready_urls), "each its own port"

    response = httpx.post(
        f"{stack.base_url}/v1/forms/contact",
        json={"name": "Ana", "email": "ana@example.com", "subject": "Cannot log in", "message": "..."},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    ticket_id = response.json()["ticket_id"]
    fake_slack.wait_for_calls_sync("chat.postMessage", timeout=60, predicate=is_announcement)

    family = stack.family()
    killed: set[int] = set()
    deadline = time.monotonic() + 120
    while stack.process.poll() is None and time.monotonic() < deadline:
        try:
            victim = stack.instance("router-2", timeout=20)
            if victim.pid not in killed:
                victim.send_signal(signal.SIGKILL)
                killed.add(victim.pid)
                family.append(victim)
        except (AssertionError, psutil.NoSuchProcess):
            pass  # `up` gave up meanwhile, or the process went first
    assert stack.wait() == 1, "\n".join(stack.output)
    assert len(killed) == 6, "the first five were restarted"
    stack.wait_for_line(
        r"^router-2 exited 6 times within 60 s \(last: signal SIGKILL\): a crash loop; stopping everything", 1
    )
    assert not [line for line in stack.output if line.startswith("router-1 exited")], "router-1 ran on, untouched"
    survivors = [process.pid for process in family if process.is_running() and process.status() != "zombie"]
    assert survivors == [], f"left behind: {survivors}"
    assert announcements(fake_slack) == {ticket_id: 1}, "two notifiers announce a ticket once"


def test_a_service_that_cannot_start_stops_up_at_once_with_its_log(settings, tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = up_env(
            tmp_path / "data",
            SWITCHBOARD_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
            SWITCHBOARD_REDIS_URL=settings.redis_url,
            SWITCHBOARD_TOPIC_PREFIX=settings.topic_prefix,
            SWITCHBOARD_SMTP_PORT=str(taken.getsockname()[1]),
        )
        stack = RunningStack(env)
        try:
            assert stack.wait() == 1
        finally:
            stack.kill()
    stack.wait_for_line(r"^the stack did not become ready: intake-smtp exited \(exit code \d+\) while starting; ", 1)
    assert any("address already in use" in line.lower() for line in stack.output), "\n".join(stack.output)
