/* Pieces the safetensors reader and writer share (not part of the public contract). */
#ifndef ADEPT_SAFETENSORS_INTERNAL_H
#define ADEPT_SAFETENSORS_INTERNAL_H

#include <stddef.h>

/* 1 when the n bytes are well-formed UTF-8 (the format requires it of the header), else 0. */
int adept_st_utf8_valid(const unsigned char *p, size_t n);

#endif
