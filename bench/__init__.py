"""Speed and memory of `newsletter`, each figure printed beside a reference measured in the
same run. Never run by CI (too slow, too noisy); tests/test_bench_smoke.py runs every
benchmark at a tiny size so they cannot rot. See bench/README.md.

    bench/run                    # everything, installing npm mjml / Debian postfix if missing
    python -m bench smtp memory  # some of them
"""

#: name on the command line -> module, in the order the table lists them.
BENCHMARKS = {
    "build": "bench.build",
    "smtp": "bench.smtp",
    "sendgrid": "bench.sendgrid_api",
    "state": "bench.state",
    "memory": "bench.memory",
    "web": "bench.web",
    "postgres": "bench.postgres",
    "bounces": "bench.bounces",
    "lists": "bench.lists",
}
