#!/bin/sh
# tests/mpi/test_mpi_dp.c under mpirun with 2 ranks (make test-mpi builds it).
exec timeout 300 mpirun --oversubscribe --allow-run-as-root -np 2 build/mpi/test_mpi_dp
