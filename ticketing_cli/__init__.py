"""The `ticketing` command line: run the services, push aggregations, see status."""
