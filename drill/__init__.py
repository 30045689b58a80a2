"""The fault drill (`just drill`, README "Fault drill"): a production-shaped stack of its own (embedded
PostgreSQL and Redis in a temporary directory, two web processes, two SAQ workers, the VTpass and Monnify
simulators, nginx in front when installed) driven by a scripted load while faults are injected from
outside: kill -9 of a worker, a PostgreSQL restart, a Redis outage, a failing provider. Not a test suite
(pytest only collects tests/): it prints a table of checked outcomes and exits non-zero on any failure.
"""
