/* Joining the process group a launcher started (adept_dist_init): the launcher's environment decides, so a
   recipe runs unchanged under `mpirun -np N` or `srun`, and a plain run never initialises MPI. */
#include <stdlib.h>

#include "adept/dist.h"
#include "dist/mpi/mpi_comm.h"
#include "dist/nccl/nccl_comm.h"

/* The environment variable that says a launcher started this process as one of a group, or NULL. */
static const char *launcher_variable(void) {
    if (getenv("OMPI_COMM_WORLD_SIZE")) return "OMPI_COMM_WORLD_SIZE";
    if (getenv("PMI_SIZE")) return "PMI_SIZE";
    if (getenv("SLURM_STEP_ID") && getenv("SLURM_NTASKS")) return "SLURM_NTASKS";
    return NULL;
}

int adept_dist_mpi_built(void) {
#ifdef ADEPT_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

adept_status adept_dist_nccl_wrap(adept_comm *host_comm, adept_comm **out) {
#ifdef ADEPT_HAVE_NCCL
    return adept_comm_nccl_wrap(host_comm, out);
#else
    (void)host_comm, (void)out;
    return adept_fail(ADEPT_EUNSUPPORTED, "dist: this build has no NCCL communicator (built without CUDA or NCCL)");
#endif
}

static adept_comm *installed, *host;

adept_status adept_dist_init(int *argc, char ***argv) {
    const char *var = launcher_variable();
    if (!var || installed) return ADEPT_OK;
#ifdef ADEPT_HAVE_MPI
    ADEPT_TRY(adept_comm_mpi_create(argc, argv, &host));
    installed = host;
#ifdef ADEPT_HAVE_NCCL
    /* GPU ranks reduce device slabs with NCCL (started at the first such reduction), the rest over MPI */
    if (adept_comm_size(host) > 1 && adept_comm_nccl_wrap(host, &installed) != ADEPT_OK) installed = host;
#endif
    adept_comm_set_world(installed);
    return ADEPT_OK;
#else
    (void)argc, (void)argv;
    /* a launcher asked for a group of one: nothing to join */
    const char *v = getenv(var);
    if (v && atoi(v) <= 1) return ADEPT_OK;
    return adept_fail(ADEPT_EUNSUPPORTED, "dist: started by a parallel launcher (%s=%s) but this adeptlua was built "
                      "without MPI (install libopenmpi-dev and rebuild: make deps && make)", var, v ? v : "?");
#endif
}

void adept_dist_finalize(void) {
    if (!installed) return;
    adept_comm_set_world(NULL);
    if (installed != host) installed->ops->destroy(installed); /* the NCCL wrapper first, then MPI */
    host->ops->destroy(host);
    installed = host = NULL;
}
