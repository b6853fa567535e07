/* The tensor ops of a device whose backend table has no entry for them (today: CUDA, and the test device;
   dispatch.c picks these): every op copies its inputs to the host, runs the CPU backend's entry there and copies
   its result back to the device. Results are therefore bitwise the CPU's. This is the documented stopgap of docs/cuda.md: the model,
   the optimizer and importance run on the device; these tensor ops are what a recipe calls on single weights
   and gradients, and they move one tensor at a time. */
#include "ops/staged.h"

#include "adept/backend.h"
#include "adept/device.h"

static const adept_backend *cpu(void) { return adept_backend_cpu(); }

/* The host twin of a device output: same dtype and shape, written back by put(). */
static adept_status host_like(const adept_tensor *t, adept_tensor **out) {
    return adept_tensor_new(t->dtype, t->ndim, t->shape, out);
}

static adept_status put(adept_tensor *dev, adept_tensor *host, adept_status st) {
    if (st == ADEPT_OK) st = adept_tensor_write(dev, 0, adept_tensor_data(host), adept_tensor_nbytes(host));
    adept_tensor_free(host);
    return st;
}

adept_status adept_staged_unary(adept_unary_op op, const adept_tensor *a, adept_tensor *out) {
    adept_tensor *ha, *ho;
    ADEPT_TRY(adept_tensor_host(a, &ha));
    adept_status st = host_like(out, &ho);
    if (st == ADEPT_OK) st = put(out, ho, cpu()->unary(op, ha, ho));
    adept_tensor_free(ha);
    return st;
}

adept_status adept_staged_binary(adept_binary_op op, const adept_tensor *a, const adept_tensor *b, adept_tensor *out) {
    adept_tensor *ha, *hb = NULL, *ho;
    ADEPT_TRY(adept_tensor_host(a, &ha));
    adept_status st = adept_tensor_host(b, &hb);
    if (st == ADEPT_OK) st = host_like(out, &ho);
    if (st == ADEPT_OK) st = put(out, ho, cpu()->binary(op, ha, hb, ho));
    adept_tensor_free(ha);
    adept_tensor_free(hb);
    return st;
}

adept_status adept_staged_scalar(adept_binary_op op, const adept_tensor *a, double s, adept_tensor *out) {
    adept_tensor *ha, *ho;
    ADEPT_TRY(adept_tensor_host(a, &ha));
    adept_status st = host_like(out, &ho);
    if (st == ADEPT_OK) st = put(out, ho, cpu()->scalar(op, ha, s, ho));
    adept_tensor_free(ha);
    return st;
}

adept_status adept_staged_reduce(adept_reduce_op op, const adept_tensor *a, double *out) {
    adept_tensor *ha;
    ADEPT_TRY(adept_tensor_host(a, &ha));
    adept_status st = cpu()->reduce(op, ha, out);
    adept_tensor_free(ha);
    return st;
}

adept_status adept_staged_reduce_dim(adept_reduce_op op, const adept_tensor *a, int dim, adept_tensor *out) {
    adept_tensor *ha, *ho;
    ADEPT_TRY(adept_tensor_host(a, &ha));
    adept_status st = host_like(out, &ho);
    if (st == ADEPT_OK) st = put(out, ho, cpu()->reduce_dim(op, ha, dim, ho));
    adept_tensor_free(ha);
    return st;
}

adept_status adept_staged_dot3(const adept_tensor *a, const adept_tensor *b, double r[3]) {
    adept_tensor *ha, *hb = NULL;
    ADEPT_TRY(adept_tensor_host(a, &ha));
    adept_status st = adept_tensor_host(b, &hb);
    if (st == ADEPT_OK) st = cpu()->dot3(ha, hb, r);
    adept_tensor_free(ha);
    adept_tensor_free(hb);
    return st;
}

adept_status adept_staged_topk(const adept_tensor *a, size_t k, adept_tensor *values, int64_t *indices) {
    adept_tensor *ha, *hv;
    ADEPT_TRY(adept_tensor_host(a, &ha));
    adept_status st = host_like(values, &hv);
    if (st == ADEPT_OK) st = put(values, hv, cpu()->topk(ha, k, hv, indices));
    adept_tensor_free(ha);
    return st;
}

adept_status adept_staged_scale_rows(const adept_tensor *a, const adept_tensor *w, adept_tensor *out) {
    adept_tensor *ha, *hw = NULL, *ho;
    ADEPT_TRY(adept_tensor_host(a, &ha));
    adept_status st = adept_tensor_host(w, &hw);
    if (st == ADEPT_OK) st = host_like(out, &ho);
    if (st == ADEPT_OK) st = put(out, ho, cpu()->scale_rows(ha, hw, ho));
    adept_tensor_free(ha);
    adept_tensor_free(hw);
    return st;
}

/* clone on one device: a device-to-device copy, nothing crosses to the host */
adept_status adept_staged_copy(const adept_tensor *src, adept_tensor *dst) {
    if (src->storage->device == dst->storage->device) {
        const adept_backend *be = adept_backend_for(src->storage->device);
        if (!be) return adept_fail_context(ADEPT_EUNSUPPORTED, "clone");
        return be->copy(adept_tensor_data(dst), adept_tensor_data(src), adept_tensor_nbytes(src));
    }
    adept_tensor *h;
    ADEPT_TRY(adept_tensor_host(src, &h));
    return put(dst, h, ADEPT_OK);
}
