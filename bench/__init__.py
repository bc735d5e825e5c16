"""``make bench``: load the ``make up`` system with wrk and measure req/s, latency, CPU per request and memory."""
