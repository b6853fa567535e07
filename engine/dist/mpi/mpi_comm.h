/* The MPI communicator (engine/dist/mpi/mpi_comm.c), built when CMake finds MPI (ADEPT_HAVE_MPI). */
#ifndef ADEPT_DIST_MPI_COMM_H
#define ADEPT_DIST_MPI_COMM_H

#include "adept/dist.h"

#ifdef ADEPT_HAVE_MPI
/* MPI_Init_thread (serialized: one thread at a time calls MPI, the trainer's all-reduce thread included) and a
   communicator over MPI_COMM_WORLD. */
adept_status adept_comm_mpi_create(int *argc, char ***argv, adept_comm **out);
#endif

#endif
