"""Faults (issue 5, item 3), each against real servers that the test starts and breaks itself:

* test_postgres_down.py - PostgreSQL stopped under load: 503s, recovery without a restart;
* test_influx_down.py - InfluxDB killed or frozen: uploads and reads 503, nothing acknowledged
  is lost;
* test_redis_down.py - Redis stopped or frozen: ``telemetry migrate`` runs in-process;
* SIGTERM letting a request in flight finish is in tests/test_serve.py.
"""
