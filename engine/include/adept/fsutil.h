/* File-system primitives for crash-safe outputs (checkpoints): mkdir -p, fsync of files and directory trees,
   rename that persists, recursive removal, directory listing; and the interrupt flag set by SIGINT/SIGTERM. */
#ifndef ADEPT_FSUTIL_H
#define ADEPT_FSUTIL_H

#include <stddef.h>

#include "adept/error.h"

adept_status adept_fs_mkdir_p(const char *path);               /* existing directories are fine */
int adept_fs_exists(const char *path);                         /* 1 file, 2 directory, 0 absent */
adept_status adept_fs_fsync(const char *path);                 /* a file or a directory */
adept_status adept_fs_fsync_tree(const char *dir);             /* every file below, then every directory */
/* rename(2) then fsync of the destination's parent directory, so the new name survives a crash. */
adept_status adept_fs_rename(const char *from, const char *to);
adept_status adept_fs_remove_tree(const char *path);           /* absent is fine; never follows symlinks */
/* Entries of a directory (not . and ..), sorted by name; the caller frees with adept_fs_list_free. */
adept_status adept_fs_list(const char *dir, char ***names, size_t *n);
void adept_fs_list_free(char **names, size_t n);

/* SIGINT/SIGTERM handling for long loops: install sets handlers that only record the signal; a second
   signal of the same kind while one is pending restores the default action and re-raises it (so a second
   Ctrl-C kills at once). Installs nest as a stack: each uninstall restores the actions its matching install
   replaced (the outermost restores the process's own), so a loop run inside another loop leaves the outer
   loop's handling in place when it returns. Fails past 64 levels. adept_interrupted returns the pending
   signal number or 0. */
adept_status adept_interrupt_install(void);
void adept_interrupt_uninstall(void); /* pops one level; nothing when none is installed */
int adept_interrupt_depth(void);      /* installs not yet uninstalled */
int adept_interrupted(void);
void adept_interrupt_clear(void);

#endif
