/*
 * The per-frame audio work of a call in C: the caller's gain control decisions
 * (`agc.CallerLevel`), its gain ramps, and the polyphase filter of both resamplers
 * (`resample.StreamingResampler`) with the rounding to int16, two calls a frame, no numpy.
 *
 * Why: a 20 ms frame is 160 samples, and at that size the Python version's cost is mostly
 * per-call overhead (about a dozen numpy calls and two rounds of scalar decisions a frame),
 * not arithmetic. The Python modules stay the reference and the fallback: this module is
 * optional (without a C compiler the package installs without it; `compiled.COMPILED` says
 * which runs), and tests run both and compare them.
 *
 * Same results: the gain control's decisions are the Python code's operations in the same
 * order on IEEE doubles with the same libm calls, so they are bit for bit the same. Each filter
 * output is summed in tap order from 0.0 and the build turns off floating-point contraction
 * (no fused multiply-add), so it does not depend on the compiler or the CPU; numpy sums its dot
 * products in another order (BLAS), so the two may differ by one least significant bit where
 * a value lands on a rounding boundary.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Multiply x[start .. start+length) by the gain ramp of one 10 ms block, as
 * `agc.CallerLevel.apply` does: a constant gain, or one moving linearly from `begin_db` at
 * the first sample to `end_db` at the last. */
static void
apply_gain_block(double *x, Py_ssize_t length, double begin_db, double end_db)
{
    double begin = pow(10.0, begin_db / 20.0);
    if (begin_db == end_db) {
        for (Py_ssize_t i = 0; i < length; i++) {
            x[i] *= begin;
        }
        return;
    }
    double span = length - 1 > 0 ? (double)(length - 1) : 0.5;
    double slope = (pow(10.0, end_db / 20.0) - begin) / span;
    for (Py_ssize_t i = 0; i < length; i++) {
        x[i] *= (double)i * slope + begin;
    }
}

static inline int16_t
to_int16(double value)
{
    value = nearbyint(value); /* round half to even, like numpy.rint */
    if (value != value) {
        return 0; /* NaN (only from a NaN gain, which the gain control never decides) */
    }
    if (value < -32768.0) {
        return -32768;
    }
    if (value > 32767.0) {
        return 32767;
    }
    return (int16_t)value;
}

/* out[i] = sum_j x[k_i + j] * taps[j] for k_i = first + i * stride, eight outputs at a time:
 * eight independent sums keep the floating-point units busy where one would wait on each
 * addition (and with stride 1 the compiler turns them into vector operations). Each sum still
 * runs in tap order. */
#define LANES 8
/* On x86-64 with GCC or clang on glibc, also compiled for AVX2 and picked at load time by the
 * CPU it runs on (20 % less time a frame measured on the caller's 8 -> 16 kHz filter): four
 * doubles to a vector instead of SSE2's two, with the same operations in the same order (no
 * fused multiply-add: -ffp-contract=off), so the same output bit for bit on either. */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define PER_CPU __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef PER_CPU
#define PER_CPU
#endif
PER_CPU static void
correlate(const double *x, const double *taps, Py_ssize_t num_taps, Py_ssize_t first,
          Py_ssize_t stride, Py_ssize_t count, int16_t *out, Py_ssize_t out_step)
{
    Py_ssize_t i = 0;
    for (; i + LANES <= count; i += LANES) {
        const double *base = x + first + i * stride;
        double acc[LANES] = {0.0};
        for (Py_ssize_t j = 0; j < num_taps; j++) {
            double t = taps[j];
            for (int lane = 0; lane < LANES; lane++) {
                acc[lane] += base[lane * stride + j] * t;
            }
        }
        for (int lane = 0; lane < LANES; lane++) {
            out[(i + lane) * out_step] = to_int16(acc[lane]);
        }
    }
    for (; i < count; i++) {
        const double *xi = x + first + i * stride;
        double a = 0.0;
        for (Py_ssize_t j = 0; j < num_taps; j++) {
            a += xi[j] * taps[j];
        }
        out[i * out_step] = to_int16(a);
    }
}

/* The gain control's parameters and state: one float64 array shared with `agc.CallerLevel`,
 * which names the same positions. */
enum {
    L_BLOCK, L_TARGET, L_MAX_GAIN, L_MIN_GAIN, L_RISE, L_GATE, L_ABOVE_NOISE, L_HANG_BLOCKS,
    L_CEILING, L_GAIN, L_SPEECH_GAIN, L_NOISE_FLOOR, L_SPEECH_POWER, L_SPEECH_BLOCKS, L_HANG,
    L_SIZE
};

/* Python's min() and max() of two floats: the first unless the second is smaller (larger). */
static inline double py_min(double a, double b) { return b < a ? b : a; }
static inline double py_max(double a, double b) { return b > a ? b : a; }

/* `CallerLevel._decide`, operation for operation: the gain (dB) at the start and the end of
 * one 10 ms block, from its power and peak, updating the state. */
static void
decide(double *s, double power, double peak, double *begin_db, double *end_db)
{
    double level = 20.0 * log10(py_max(sqrt(power), 1e-9) / 32768.0);
    double noise_floor = py_min(level, s[L_NOISE_FLOOR] + 0.005);
    s[L_NOISE_FLOOR] = noise_floor;
    int speech = level > s[L_GATE] && level > noise_floor + s[L_ABOVE_NOISE];
    if (speech) {
        s[L_SPEECH_BLOCKS] += 1.0;
        double weight = py_max(1.0 / s[L_SPEECH_BLOCKS], 0.005);
        double old = s[L_SPEECH_POWER];
        s[L_SPEECH_POWER] = old < 0.0 ? power : (1.0 - weight) * old + weight * power;
        s[L_HANG] = s[L_HANG_BLOCKS];
        double speech_level = 10.0 * log10(py_max(s[L_SPEECH_POWER], 1e-18)) - 20.0 * log10(32768.0);
        double wanted = py_min(py_max(s[L_TARGET] - (speech_level != 0.0 ? speech_level : level), s[L_MIN_GAIN]),
                               s[L_MAX_GAIN]);
        double step = s[L_RISE];
        s[L_SPEECH_GAIN] += py_max(-step, py_min(step, wanted - s[L_SPEECH_GAIN]));
    } else if (s[L_HANG] > 0.0) {
        s[L_HANG] -= 1.0;
    }
    int talking = speech || s[L_HANG] > 0.0;
    double target = talking ? s[L_SPEECH_GAIN] : py_min(s[L_SPEECH_GAIN], 0.0);
    if (peak > 0.0) {
        target = py_min(target, 20.0 * log10(s[L_CEILING] / peak));
    }
    double begin = s[L_GAIN];
    if (target < begin && peak * pow(10.0, begin / 20.0) > s[L_CEILING]) {
        begin = target;
    }
    s[L_GAIN] = target;
    *begin_db = begin;
    *end_db = target;
}

PyDoc_STRVAR(gain_ramps_doc,
"gain_ramps(state, samples) -> bytes | None\n\n"
"The gain control's decision for each 10 ms block of int16 samples: float64 quadruples\n"
"(start, length, begin_db, end_db) as bytes, or None where the gain is unity throughout.\n"
"state: the writable float64 array of `agc.CallerLevel` (updated).");

static PyObject *
gain_ramps(PyObject *module, PyObject *args)
{
    Py_buffer state, samples;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "w*y*:gain_ramps", &state, &samples)) {
        return NULL;
    }
    double *s = (double *)state.buf;
    Py_ssize_t count = samples.len / 2, block;
    if (state.len != L_SIZE * (Py_ssize_t)sizeof(double) || samples.len % 2 || (block = (Py_ssize_t)s[L_BLOCK]) < 1) {
        PyErr_SetString(PyExc_ValueError, "gain_ramps: not a gain control's state, or half a sample");
        goto done;
    }
    if (count == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    Py_ssize_t num_blocks = (count + block - 1) / block;
    result = PyBytes_FromStringAndSize(NULL, num_blocks * 4 * (Py_ssize_t)sizeof(double));
    if (result == NULL) {
        goto done;
    }
    double *quad = (double *)PyBytes_AS_STRING(result);
    const int16_t *in = (const int16_t *)samples.buf;
    int any_gain = 0;
    for (Py_ssize_t start = 0; start < count; start += block, quad += 4) {
        Py_ssize_t length = count - start < block ? count - start : block;
        /* audioop.rms (an integer, truncated) and audioop.max, as the Python code uses them */
        double sum_squares = 0.0;
        unsigned int peak = 0;
        for (Py_ssize_t i = 0; i < length; i++) {
            int value = in[start + i];
            double v = (double)value;
            sum_squares += v * v;
            unsigned int magnitude = value < 0 ? (unsigned int)(-value) : (unsigned int)value;
            if (magnitude > peak) {
                peak = magnitude;
            }
        }
        unsigned int rms = (unsigned int)sqrt(sum_squares / (double)length);
        double begin_db, end_db;
        decide(s, (double)((unsigned long long)rms * rms), (double)peak, &begin_db, &end_db);
        any_gain = any_gain || begin_db != 0.0 || end_db != 0.0;
        quad[0] = (double)start;
        quad[1] = (double)length;
        quad[2] = begin_db;
        quad[3] = end_db;
    }
    if (!any_gain) {
        Py_SETREF(result, Py_NewRef(Py_None));
    }

done:
    PyBuffer_Release(&state);
    PyBuffer_Release(&samples);
    return result;
}

PyDoc_STRVAR(fir_stream_doc,
"fir_stream(history, phases, up, down, first, samples, gain_blocks) -> bytes\n\n"
"One chunk through a streaming polyphase resampler; returns int16 output as bytes.\n\n"
"history: writable float64 buffer of the last num_taps_per_phase - 1 inputs (updated).\n"
"phases: float64, `up` phases of num_taps_per_phase taps each, each reversed.\n"
"first: (decimation) index in this chunk of the next output's window.\n"
"samples: int16 input.  gain_blocks: None, or what gain_ramps returned, applied to\n"
"the input before filtering.");

static PyObject *
fir_stream(PyObject *module, PyObject *args)
{
    Py_buffer history, phases, samples, blocks;
    int up, down, first;
    PyObject *blocks_obj;
    PyObject *result = NULL;
    double *x = NULL;
    int have_blocks = 0;

    if (!PyArg_ParseTuple(args, "w*y*iiiy*O:fir_stream", &history, &phases, &up, &down, &first,
                          &samples, &blocks_obj)) {
        return NULL;
    }
    Py_ssize_t history_len = history.len / (Py_ssize_t)sizeof(double);
    Py_ssize_t per_phase = history_len + 1;
    Py_ssize_t count = samples.len / 2;
    if (blocks_obj != Py_None) {
        if (PyObject_GetBuffer(blocks_obj, &blocks, PyBUF_SIMPLE) < 0) {
            goto done;
        }
        have_blocks = 1;
    }
    if (up < 1 || down < 1 || (up > 1 && down > 1) || first < 0 ||
        history.len % (Py_ssize_t)sizeof(double) ||
        phases.len != (Py_ssize_t)sizeof(double) * up * per_phase || samples.len % 2 ||
        (have_blocks && blocks.len % (4 * (Py_ssize_t)sizeof(double)))) {
        PyErr_SetString(PyExc_ValueError, "fir_stream: buffer sizes do not match the filter");
        goto done;
    }

    Py_ssize_t out_count;
    if (up > 1) {
        out_count = count * up;
    } else {
        out_count = first < count ? (count - 1 - first) / down + 1 : 0;
    }
    result = PyBytes_FromStringAndSize(NULL, out_count * 2);
    if (result == NULL || count == 0) {
        goto done;
    }
    x = PyMem_Malloc(sizeof(double) * (size_t)(history_len + count));
    if (x == NULL) {
        Py_CLEAR(result);
        PyErr_NoMemory();
        goto done;
    }
    memcpy(x, history.buf, sizeof(double) * (size_t)history_len);
    const int16_t *in = (const int16_t *)samples.buf;
    double *chunk = x + history_len;
    for (Py_ssize_t i = 0; i < count; i++) {
        chunk[i] = (double)in[i];
    }
    if (have_blocks) {
        const double *quad = (const double *)blocks.buf;
        Py_ssize_t num_blocks = blocks.len / (4 * (Py_ssize_t)sizeof(double));
        for (Py_ssize_t b = 0; b < num_blocks; b++, quad += 4) {
            /* compared as doubles first: a NaN or a huge value fails here, before any cast */
            if (!(quad[0] >= 0.0 && quad[1] >= 0.0 && quad[0] + quad[1] <= (double)count)) {
                Py_CLEAR(result);
                PyErr_SetString(PyExc_ValueError, "fir_stream: a gain block lies outside the chunk");
                goto done;
            }
            apply_gain_block(chunk + (Py_ssize_t)quad[0], (Py_ssize_t)quad[1], quad[2], quad[3]);
        }
    }

    int16_t *out = (int16_t *)PyBytes_AS_STRING(result);
    const double *taps = (const double *)phases.buf;
    if (up > 1) {
        for (int r = 0; r < up; r++) {
            correlate(x, taps + r * per_phase, per_phase, 0, 1, count, out + r, up);
        }
    } else if (out_count) {
        correlate(x, taps, per_phase, first, down, out_count, out, 1);
    }
    /* The newest inputs become the next chunk's history. */
    memcpy(history.buf, x + count, sizeof(double) * (size_t)history_len);

done:
    PyMem_Free(x);
    if (have_blocks) {
        PyBuffer_Release(&blocks);
    }
    PyBuffer_Release(&history);
    PyBuffer_Release(&phases);
    PyBuffer_Release(&samples);
    return result;
}

static PyMethodDef kernels_methods[] = {
    {"gain_ramps", gain_ramps, METH_VARARGS, gain_ramps_doc},
    {"fir_stream", fir_stream, METH_VARARGS, fir_stream_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef kernels_module = {
    PyModuleDef_HEAD_INIT,
    "_kernels",
    "The per-frame audio work of a call in C (see agc.py and resample.py).",
    0,
    kernels_methods,
};

PyMODINIT_FUNC
PyInit__kernels(void)
{
    return PyModule_Create(&kernels_module);
}
