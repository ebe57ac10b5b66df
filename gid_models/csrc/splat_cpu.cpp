// Bilinear forward splatting on the CPU: the compiled backend of gid_models/splatting.py.
//
// bilinear_splat(values [B, K, H, W], flow [B, 2, H, W]) -> sums [B, K, H, W]
// adds the K values of every source pixel p, times the bilinear weights, to the 2x2 target
// pixels around p + flow(p) (flow in pixels, channel 0 = x to the right, 1 = y down). Corners
// outside the image, and sources whose flow is not finite, are dropped. Softmax weights and the
// normalisation are done in Python; this file only does the scatter, the part torch is slow at.
//
// Threads without atomics: the B * H output rows (all images stacked) are cut into one band per
// thread, and a thread only ever writes into its own band. In a first pass each thread splats the
// source pixels of its own band; as motion is small compared with a band, nearly every corner
// lands in the same band. The corners that cross into another band are left out and their sources
// remembered; in a second pass every thread adds, from the other threads' lists, the corners that
// land in its band. Each corner is thus added exactly once, by the thread that owns its row.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace {

template <typename scalar_t>
struct Splatter {
  const scalar_t* values;
  const scalar_t* flow;
  scalar_t* sums;
  int64_t channels, height, width;

  // Adds the corners of the source pixel at stacked row `row` (image row * height + y) and
  // column x that land in the stacked rows [row_begin, row_end). Returns whether a corner inside
  // the image landed outside those rows, i.e. whether the source must be visited again.
  bool splat(int64_t row, int64_t x, int64_t row_begin, int64_t row_end) const {
    const int64_t plane = height * width;
    const int64_t image = row / height;
    const int64_t y = row % height;
    const int64_t pixel = y * width + x;
    const scalar_t* image_flow = flow + image * 2 * plane;
    const scalar_t qx = x + image_flow[pixel];
    const scalar_t qy = y + image_flow[plane + pixel];
    // Comparisons with NaN are false, so this also drops non-finite flows.
    if (!(qx > -1 && qx < width && qy > -1 && qy < height)) {
      return false;
    }
    const int64_t x0 = static_cast<int64_t>(std::floor(qx));
    const int64_t y0 = static_cast<int64_t>(std::floor(qy));
    const scalar_t ax = qx - x0;
    const scalar_t ay = qy - y0;
    const scalar_t* source = values + image * channels * plane + pixel;
    scalar_t* image_sums = sums + image * channels * plane;

    bool crossed = false;
    for (int64_t dy = 0; dy < 2; ++dy) {
      const int64_t ty = y0 + dy;
      if (ty < 0 || ty >= height) {
        continue;
      }
      const int64_t target_row = image * height + ty;
      if (target_row < row_begin || target_row >= row_end) {
        crossed = true;
        continue;
      }
      const scalar_t wy = dy ? ay : 1 - ay;
      for (int64_t dx = 0; dx < 2; ++dx) {
        const int64_t tx = x0 + dx;
        if (tx < 0 || tx >= width) {
          continue;
        }
        const scalar_t weight = wy * (dx ? ax : 1 - ax);
        scalar_t* target = image_sums + ty * width + tx;
        for (int64_t k = 0; k < channels; ++k) {
          target[k * plane] += weight * source[k * plane];
        }
      }
    }
    return crossed;
  }
};

template <typename scalar_t>
void splat_in_bands(const Splatter<scalar_t>& splatter, int64_t rows) {
  const int64_t width = splatter.width;
  const int64_t bands = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows));
  const auto band_begin = [&](int64_t band) { return band * rows / bands; };
  std::vector<std::vector<int64_t>> crossing(bands);  // sources as row * width + x

  at::parallel_for(0, bands, 1, [&](int64_t first, int64_t last) {
    for (int64_t band = first; band < last; ++band) {
      const int64_t begin = band_begin(band), end = band_begin(band + 1);
      for (int64_t row = begin; row < end; ++row) {
        for (int64_t x = 0; x < width; ++x) {
          if (splatter.splat(row, x, begin, end)) {
            crossing[band].push_back(row * width + x);
          }
        }
      }
    }
  });

  at::parallel_for(0, bands, 1, [&](int64_t first, int64_t last) {
    for (int64_t band = first; band < last; ++band) {
      const int64_t begin = band_begin(band), end = band_begin(band + 1);
      for (int64_t other = 0; other < bands; ++other) {
        // A band's own crossing sources already added their corners inside it in the first pass.
        if (other == band) {
          continue;
        }
        for (const int64_t source : crossing[other]) {
          splatter.splat(source / width, source % width, begin, end);
        }
      }
    }
  });
}

torch::Tensor bilinear_splat(const torch::Tensor& values, const torch::Tensor& flow) {
  TORCH_CHECK(values.device().is_cpu() && flow.device().is_cpu(), "bilinear_splat runs on the CPU");
  TORCH_CHECK(values.dim() == 4 && flow.dim() == 4 && flow.size(1) == 2 &&
                  values.size(0) == flow.size(0) && values.size(2) == flow.size(2) &&
                  values.size(3) == flow.size(3),
              "bilinear_splat expects values [B, K, H, W] and flow [B, 2, H, W]");
  TORCH_CHECK(values.scalar_type() == flow.scalar_type(), "values and flow must share one dtype");
  TORCH_CHECK(values.is_contiguous() && flow.is_contiguous(), "values and flow must be contiguous");

  torch::Tensor sums = torch::zeros_like(values);
  AT_DISPATCH_FLOATING_TYPES(values.scalar_type(), "bilinear_splat", [&] {
    const Splatter<scalar_t> splatter{values.data_ptr<scalar_t>(), flow.data_ptr<scalar_t>(),
                                      sums.data_ptr<scalar_t>(),   values.size(1),
                                      values.size(2),              values.size(3)};
    splat_in_bands(splatter, values.size(0) * values.size(2));
  });
  return sums;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bilinear_splat", &bilinear_splat, "Bilinear forward splatting of [B, K, H, W] values",
        py::arg("values"), py::arg("flow"), py::call_guard<py::gil_scoped_release>());
}
