#!/bin/sh
# One benchmark trial: five epochs of 50 ms each, each reported as a metric line on stdout
# (`{"epoch": e, "metrics": {...}}`). Arguments (`--i 17`) are accepted and ignored.
for e in 1 2 3 4 5; do
  sleep 0.05
  echo "{\"epoch\": $e, \"metrics\": {\"loss\": 0.$e}}"
done
