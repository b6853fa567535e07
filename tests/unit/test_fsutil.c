/* adept/fsutil.h: mkdir -p, durable rename, recursive removal (no symlink following), sorted listing, fsync,
   and the interrupt flag raised by a real SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adept/fsutil.h"
#include "check.h"

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) { fputs(text, f); fclose(f); }
}

int main(void) {
    char root[] = "/tmp/adept_fsutil_XXXXXX";
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    char p[512], q[512];

    snprintf(p, sizeof p, "%s/a/b/c", root);
    CHECK_OK(adept_fs_mkdir_p(p));
    CHECK_OK(adept_fs_mkdir_p(p)); /* existing is fine */
    CHECK(adept_fs_exists(p) == 2);
    snprintf(q, sizeof q, "%s/a/b/c/file", root);
    write_file(q, "x");
    CHECK(adept_fs_exists(q) == 1);
    CHECK_FAILS(adept_fs_mkdir_p(q), ADEPT_EIO); /* a file in the way */
    CHECK(strstr(adept_last_error(), "not a directory") != NULL);
    CHECK_OK(adept_fs_fsync(q));
    snprintf(p, sizeof p, "%s/a", root);
    CHECK_OK(adept_fs_fsync_tree(p));

    /* listing is sorted and excludes . and .. */
    snprintf(p, sizeof p, "%s/a/b/c/zz", root); write_file(p, "");
    snprintf(p, sizeof p, "%s/a/b/c/aa", root); write_file(p, "");
    snprintf(p, sizeof p, "%s/a/b/c", root);
    char **names;
    size_t n;
    CHECK_OK(adept_fs_list(p, &names, &n));
    CHECK(n == 3 && !strcmp(names[0], "aa") && !strcmp(names[1], "file") && !strcmp(names[2], "zz"));
    adept_fs_list_free(names, n);
    snprintf(p, sizeof p, "%s/absent", root);
    CHECK_FAILS(adept_fs_list(p, &names, &n), ADEPT_EIO);

    /* rename a tree into place */
    snprintf(p, sizeof p, "%s/a", root);
    snprintf(q, sizeof q, "%s/renamed", root);
    CHECK_OK(adept_fs_rename(p, q));
    CHECK(adept_fs_exists(p) == 0 && adept_fs_exists(q) == 2);
    CHECK_FAILS(adept_fs_rename(p, q), ADEPT_EIO);

    /* remove_tree does not follow a symlink out of the tree */
    char outside[512], link[512];
    snprintf(outside, sizeof outside, "%s/outside", root);
    CHECK_OK(adept_fs_mkdir_p(outside));
    snprintf(p, sizeof p, "%s/outside/keep", root); write_file(p, "keep");
    snprintf(link, sizeof link, "%s/renamed/link", root);
    CHECK(symlink(outside, link) == 0);
    CHECK_OK(adept_fs_remove_tree(q));
    CHECK(adept_fs_exists(q) == 0);
    CHECK(adept_fs_exists(p) == 1);
    CHECK_OK(adept_fs_remove_tree(q)); /* absent is fine */

    /* the interrupt flag */
    CHECK(adept_interrupted() == 0);
    CHECK_OK(adept_interrupt_install());
    raise(SIGTERM);
    CHECK(adept_interrupted() == SIGTERM);
    adept_interrupt_clear();
    CHECK(adept_interrupted() == 0);
    /* nested installs are a stack (issue 16: an adept.train inside another's callback turned the outer run's
       handling off when it returned, and a later SIGTERM killed the process without a checkpoint) */
    struct sigaction ours, now;
    sigaction(SIGTERM, NULL, &ours);
    CHECK(ours.sa_handler != SIG_DFL);
    CHECK_OK(adept_interrupt_install());
    CHECK(adept_interrupt_depth() == 2);
    adept_interrupt_uninstall();
    CHECK(adept_interrupt_depth() == 1);
    sigaction(SIGTERM, NULL, &now);
    CHECK(now.sa_handler == ours.sa_handler);
    raise(SIGTERM); /* still only recorded: with the handler gone this would end the test */
    CHECK(adept_interrupted() == SIGTERM);
    adept_interrupt_clear();
    adept_interrupt_uninstall();
    CHECK(adept_interrupt_depth() == 0);
    sigaction(SIGTERM, NULL, &now);
    CHECK(now.sa_handler == SIG_DFL);
    adept_interrupt_uninstall(); /* one too many: nothing */
    CHECK(adept_interrupt_depth() == 0);
    for (int i = 0; i < 64; i++) CHECK_OK(adept_interrupt_install());
    CHECK_FAILS(adept_interrupt_install(), ADEPT_ESTATE);
    for (int i = 0; i < 64; i++) adept_interrupt_uninstall();
    sigaction(SIGTERM, NULL, &now);
    CHECK(now.sa_handler == SIG_DFL);

    CHECK_OK(adept_fs_remove_tree(root));
    CHECK(adept_fs_exists(root) == 0);
    return check_summary();
}
