// Softmax splatting on the CPU: the compiled backend of gid_models/splatting.py.
//
// splat(input [B, C, H, W], flow [B, 2, H, W], metric [B, 1, H, W] or None, mode, with_coverage)
//     -> (output [B, C, H, W], coverage [B, 1, H, W] or None)
// computes what splatting.py documents for its modes "softmax", "average" and "sum", with the
// same rules (targets outside the image and sources with a non-finite flow or metric are
// dropped; holes are exact zeros), in one pass over the sources and one over the targets. The
// torch backend needs about twenty passes over the image and a slow index_add_ for the same.
//
// The sums of a target pixel lie next to each other ("channels last"), K = C + 1 or C + 2 of
// them: the C weighted values, the sum of the weights (the denominator; in the modes without a
// metric every weight is 1 and this is the coverage), and in softmax mode, when asked for, the
// coverage. A source thus adds one short contiguous row of K numbers to each of its four target
// pixels, which the compiler vectorizes, instead of K numbers scattered over K planes.
//
// Threads without atomic additions: the B * H target rows (all images stacked) are cut into
// bands, and a band's rows are only ever written by the thread that works on that band. In a
// first pass the source pixels of each band are splatted; as motion is small compared with a
// band, nearly every corner lands in the source's own band. The corners that cross into another
// band are left out, and their sources remembered in a list for that band; in a second pass each
// band adds the corners from its lists, then writes its part of the output. Each corner is thus
// added exactly once. There are a few bands per thread, taken in turn by whichever thread is
// free (see for_each_task), so that a thread that other processes keep off the cores delays
// nothing.

// The narrowest headers that do: <torch/extension.h> would triple the first build's time.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/csrc/utils/pybind.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace {

template <typename scalar_t>
struct Splatter {
  const scalar_t* input;   // [B, C, H, W]
  const scalar_t* flow;    // [B, 2, H, W]
  const scalar_t* metric;  // [B, 1, H, W] in softmax mode, else nullptr
  const scalar_t* shift;   // [B], the largest finite metric of each image
  scalar_t* sums;          // [B, H, W, K]
  int64_t channels, height, width, sums_per_pixel;

  // Adds the corners of source pixel (x, y) of `image` that land in the stacked target rows
  // [row_begin, row_end) (stacked row = image * height + y), and calls on_crossing(row) for each
  // stacked row inside the image but outside those rows that other corners land in. `values`
  // is scratch space for K numbers.
  template <typename OnCrossing>
  void splat(int64_t image, int64_t y, int64_t x, int64_t row_begin, int64_t row_end,
             scalar_t* values, const OnCrossing& on_crossing) const {
    const int64_t plane = height * width;
    const int64_t pixel = y * width + x;
    const scalar_t qx = x + flow[image * 2 * plane + pixel];
    const scalar_t qy = y + flow[(image * 2 + 1) * plane + pixel];
    // Comparisons with NaN are false, so this also drops non-finite flows.
    if (!(qx > -1 && qx < width && qy > -1 && qy < height)) {
      return;
    }
    scalar_t weight = 1;
    if (metric != nullptr) {
      const scalar_t m = metric[image * plane + pixel];
      if (!std::isfinite(m)) {
        return;
      }
      weight = std::exp(m - shift[image]);
    }
    // floor() for q > -1: truncation rounds negatives up, hence the correction. (std::floor
    // is a library call on x86-64 without SSE4.1 and cost a quarter of the time here.)
    const int64_t x0 = static_cast<int64_t>(qx) - (qx < 0);
    const int64_t y0 = static_cast<int64_t>(qy) - (qy < 0);
    const scalar_t ax = qx - x0;
    const scalar_t ay = qy - y0;

    const scalar_t* source = input + image * channels * plane + pixel;
    for (int64_t c = 0; c < channels; ++c) {
      values[c] = weight * source[c * plane];
    }
    values[channels] = weight;
    if (sums_per_pixel > channels + 1) {
      values[channels + 1] = 1;
    }

    for (int64_t dy = 0; dy < 2; ++dy) {
      const int64_t ty = y0 + dy;
      if (ty < 0 || ty >= height) {
        continue;
      }
      const int64_t target_row = image * height + ty;
      if (target_row < row_begin || target_row >= row_end) {
        on_crossing(target_row);
        continue;
      }
      const scalar_t wy = dy ? ay : 1 - ay;
      for (int64_t dx = 0; dx < 2; ++dx) {
        const int64_t tx = x0 + dx;
        if (tx < 0 || tx >= width) {
          continue;
        }
        const scalar_t bilinear = wy * (dx ? ax : 1 - ax);
        scalar_t* target = sums + (target_row * width + tx) * sums_per_pixel;
        for (int64_t k = 0; k < sums_per_pixel; ++k) {
          target[k] += bilinear * values[k];
        }
      }
    }
  }

  // Writes the output of the stacked target rows [row_begin, row_end), whose sums are complete:
  // divided by the sum of the weights, except in mode "sum", and back to [B, C, H, W].
  void finish_rows(int64_t row_begin, int64_t row_end, bool normalize, scalar_t* output,
                   scalar_t* coverage) const {
    const int64_t plane = height * width;
    for (int64_t row = row_begin; row < row_end; ++row) {
      const int64_t image = row / height;
      const int64_t first_pixel = (row - image * height) * width;
      for (int64_t x = 0; x < width; ++x) {
        const scalar_t* s = sums + (row * width + x) * sums_per_pixel;
        const scalar_t denominator = s[channels];
        for (int64_t c = 0; c < channels; ++c) {
          // Holes, where no weight landed, are exact zeros.
          const scalar_t value = !normalize ? s[c] : denominator > 0 ? s[c] / denominator : 0;
          output[(image * channels + c) * plane + first_pixel + x] = value;
        }
        if (coverage != nullptr) {
          coverage[image * plane + first_pixel + x] = s[sums_per_pixel - 1];
        }
      }
    }
  }
};

// Calls work(task) for every task in [0, tasks), each task taken by the next free thread: the
// calling thread and up to at::get_num_threads() - 1 helpers from torch's inter-op thread pool.
// Returns as soon as all tasks are done, without waiting for helpers that never got a core:
// the calling thread then does their share. (An OpenMP region, as in at::parallel_for, waits
// for every thread to arrive; where other processes keep the cores busy, that wait costs more
// than the threads gain.)
template <typename Work>
void for_each_task(int64_t tasks, const Work& work) {
  struct Progress {
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
    std::mutex mutex;
    std::exception_ptr error;
  };
  const auto progress = std::make_shared<Progress>();
  // A helper that starts after the last task was taken returns at once: it never touches
  // `work`, which may be gone by then, only `progress`, which it shares.
  const auto take_tasks = [progress, tasks, &work] {
    for (int64_t task = progress->next++; task < tasks; task = progress->next++) {
      try {
        work(task);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(progress->mutex);
        progress->error = std::current_exception();
      }
      progress->done++;
    }
  };
  const int64_t helpers = std::min<int64_t>(tasks, at::get_num_threads()) - 1;
  for (int64_t helper = 0; helper < helpers; ++helper) {
    at::launch(take_tasks);
  }
  take_tasks();
  while (progress->done < tasks) {
    std::this_thread::yield();
  }
  if (progress->error) {
    std::rethrow_exception(progress->error);
  }
}

// Splats all sources band by band (see the top of the file) and writes the output.
template <typename scalar_t>
void splat_in_bands(const Splatter<scalar_t>& splatter, int64_t batch, bool normalize,
                    scalar_t* output, scalar_t* coverage) {
  const int64_t height = splatter.height, width = splatter.width, k = splatter.sums_per_pixel;
  const int64_t rows = batch * height;
  const int64_t threads = at::get_num_threads();
  const int64_t rows_per_band = std::max<int64_t>(1, rows / (threads > 1 ? 4 * threads : 1));
  const int64_t bands = (rows + rows_per_band - 1) / rows_per_band;
  // crossing[from * bands + to]: sources of band `from` with corners in band `to`, each stored
  // as stacked row * width + x.
  std::vector<std::vector<int64_t>> crossing(bands * bands);

  for_each_task(bands, [&](int64_t band) {
    const int64_t begin = band * rows_per_band, end = std::min(rows, begin + rows_per_band);
    // Zeroed here rather than at allocation, by the only thread that writes these rows.
    std::fill(splatter.sums + begin * width * k, splatter.sums + end * width * k, scalar_t(0));
    std::vector<scalar_t> values(k);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t image = row / height;
      for (int64_t x = 0; x < width; ++x) {
        const int64_t source = row * width + x;
        splatter.splat(image, row - image * height, x, begin, end, values.data(),
                       [&](int64_t target_row) {
                         std::vector<int64_t>& list =
                             crossing[band * bands + target_row / rows_per_band];
                         // Both target rows of a source may lie in the same other band.
                         if (list.empty() || list.back() != source) {
                           list.push_back(source);
                         }
                       });
      }
    }
  });

  for_each_task(bands, [&](int64_t band) {
    const int64_t begin = band * rows_per_band, end = std::min(rows, begin + rows_per_band);
    std::vector<scalar_t> values(k);
    for (int64_t from = 0; from < bands; ++from) {
      for (const int64_t source : crossing[from * bands + band]) {
        const int64_t row = source / width;
        const int64_t image = row / height;
        splatter.splat(image, row - image * height, source % width, begin, end, values.data(),
                       [](int64_t) {});
      }
    }
    splatter.finish_rows(begin, end, normalize, output, coverage);
  });
}

// The largest finite value of each image's metric, 0 for an image without one.
template <typename scalar_t>
std::vector<scalar_t> largest_finite_metric(const scalar_t* metric, int64_t batch, int64_t plane) {
  std::vector<scalar_t> shift(batch, 0);
  for_each_task(batch, [&](int64_t image) {
    scalar_t largest = -std::numeric_limits<scalar_t>::infinity();
    for (int64_t pixel = 0; pixel < plane; ++pixel) {
      const scalar_t m = metric[image * plane + pixel];
      if (std::isfinite(m)) {
        largest = std::max(largest, m);
      }
    }
    shift[image] = std::isfinite(largest) ? largest : 0;
  });
  return shift;
}

std::tuple<at::Tensor, std::optional<at::Tensor>> splat(
    const at::Tensor& input, const at::Tensor& flow,
    const std::optional<at::Tensor>& metric, const std::string& mode, bool with_coverage) {
  TORCH_CHECK(mode == "softmax" || mode == "average" || mode == "sum", "unknown mode ", mode);
  TORCH_CHECK(metric.has_value() == (mode == "softmax"), "only mode softmax takes a metric");
  TORCH_CHECK(input.dim() == 4, "input must be [B, C, H, W]");
  const int64_t batch = input.size(0), channels = input.size(1);
  const int64_t height = input.size(2), width = input.size(3);
  // splatting.py validates the arguments; these checks only guard the memory accesses below.
  const auto fits = [&](const at::Tensor& tensor, int64_t tensor_channels) {
    return tensor.device().is_cpu() && tensor.is_contiguous() &&
           tensor.scalar_type() == input.scalar_type() &&
           tensor.sizes() == at::IntArrayRef({batch, tensor_channels, height, width});
  };
  TORCH_CHECK(fits(input, channels) && fits(flow, 2) && (!metric || fits(*metric, 1)),
              "splat expects contiguous CPU tensors of one dtype: input [B, C, H, W], "
              "flow [B, 2, H, W], metric [B, 1, H, W]");

  const bool coverage_channel = with_coverage && metric.has_value();
  const int64_t sums_per_pixel = channels + 1 + coverage_channel;
  at::Tensor sums = at::empty({batch, height, width, sums_per_pixel}, input.options());
  at::Tensor output = at::empty_like(input);
  std::optional<at::Tensor> coverage;
  if (with_coverage) {
    coverage = at::empty({batch, 1, height, width}, input.options());
  }

  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "splat", [&] {
    const scalar_t* metric_data = metric ? metric->data_ptr<scalar_t>() : nullptr;
    const std::vector<scalar_t> shift =
        metric ? largest_finite_metric(metric_data, batch, height * width)
               : std::vector<scalar_t>(batch, 0);
    const Splatter<scalar_t> splatter{input.data_ptr<scalar_t>(), flow.data_ptr<scalar_t>(),
                                      metric_data, shift.data(), sums.data_ptr<scalar_t>(),
                                      channels, height, width, sums_per_pixel};
    splat_in_bands(splatter, batch, mode != "sum", output.data_ptr<scalar_t>(),
                   coverage ? coverage->data_ptr<scalar_t>() : nullptr);
  });
  return {output, coverage};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("splat", &splat, "Softmax splatting of [B, C, H, W] on the CPU", py::arg("input"),
        py::arg("flow"), py::arg("metric"), py::arg("mode"), py::arg("with_coverage"),
        py::call_guard<py::gil_scoped_release>());
}
