"""Devices and several machines: device strings, the kvstore and collectives between workers, and ``launch.py``'s scheduler/server/worker launcher."""
