"""The embedded stack behind `make run`: PostgreSQL and a Kafka-protocol broker from wheels, the
services as processes, demo data. Development and test tooling; production uses deploy/."""
