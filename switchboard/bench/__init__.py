"""`switchboard bench`: throughput, latency and memory of the pipeline, observed from outside (SPEC §6).

Every service is a black box started as `switchboard run NAME`; the bench feeds it through its public
inputs (intake-http forms, or a backlog written straight to a topic) and measures what comes out:
consumer-group committed offsets, records on the ticket topic, and the calls reaching a built-in fake
Slack. Modules: options (what to run), workload (records and forms), load (sending them), kafka_gauges
(offsets and the ticket-topic tally), fake_slack, services (processes and their RSS), stats (pure
arithmetic), runner (the run), report and plot (the JSON and PNG).
"""
