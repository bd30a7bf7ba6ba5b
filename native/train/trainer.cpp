#include "train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/utils.h>

#include <cmath>

#include "ops/fade_in.h"
#include "train/host_allocator.h"

namespace progan {

namespace {

std::vector<at::Tensor> parameterList(torch::nn::Module& m) { return m.parameters(); }

void copyParameters(torch::nn::Module& from, torch::nn::Module& to) {
  at::NoGradGuard noGrad;
  auto src = from.parameters();
  auto dst = to.parameters();
  for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i]);
}

void setRequiresGrad(const std::vector<at::Tensor>& params, bool on) {
  for (const auto& p : params) p.requires_grad_(on);
}

// Undefined, not zero: a parameter outside this step's graph then has no gradient, and Adam skips it.
void clearGrads(const std::vector<at::Tensor>& params) {
  for (const auto& p : params)
    if (p.grad().defined()) p.mutable_grad().reset();
}

NamedTensors cloneGrads(torch::nn::Module& m) {
  NamedTensors out;
  for (const auto& p : m.named_parameters())
    out.emplace_back(p.key(), p.value().grad().defined() ? p.value().grad().clone() : at::zeros_like(p.value()));
  return out;
}

}  // namespace

Trainer::Trainer(const TrainingConfig& config)
    : config_(config), rng_(at::make_generator<at::CPUGeneratorImpl>(config.seed)) {
  useCachingHostAllocator();
  torch::manual_seed(config.seed);  // the networks' initial weights
  g_ = Generator(config.network);
  d_ = Discriminator(config.network);
  gEma_ = Generator(config.network);
  device_ = at::Device(config.device);
  if (device_.is_cuda()) {
    // Conv algorithms are picked by measurement once per shape; shapes repeat every step.
    at::globalContext().setBenchmarkCuDNN(true);
    // Benchmark mode then times only the deterministic algorithms.
    if (config.deterministic) at::globalContext().setDeterministicCuDNN(true);
    g_->to(device_);
    d_->to(device_);
    gEma_->to(device_);
  }
  copyParameters(*g_, *gEma_);
  for (auto& p : gEma_->parameters()) p.requires_grad_(false);
  gParams_ = parameterList(*g_);
  dParams_ = parameterList(*d_);
  gEmaParams_ = parameterList(*gEma_);
  recordEmaEquality();
  adamG_ = std::make_unique<Adam>(gParams_, config.adam);
  adamD_ = std::make_unique<Adam>(dParams_, config.adam);
  skipCounts_ = at::zeros({2}, at::TensorOptions().dtype(at::kDouble).device(device_));
  emaWeight_ = at::zeros({}, gParams_.front().options().requires_grad(false));
  alphaOnDevice_ = at::ones({}, gParams_.front().options().requires_grad(false));
  if (!config.dataset.path.empty()) {
    dataset_ = std::make_unique<DatasetFile>(config.dataset);
    sampler_ = std::make_unique<Sampler>(config.dataset.count, config.seed ^ 0x9E3779B97F4A7C15ull);
  }
}

void Trainer::recordEmaEquality() {
  emaEqual_.assign(gParams_.size(), std::nullopt);
  for (size_t i = 0; i < gParams_.size(); ++i)
    if (at::equal(gParams_[i], gEmaParams_[i])) emaEqual_[i] = EmaEquality{gParams_[i]._version(), gEmaParams_[i]._version()};
}

double Trainer::emaBeta(int64_t minibatch) const {
  const auto& e = config_.ema;
  if (e.halfLifeKimg <= 0) return e.beta;
  double halfLifeImages = e.halfLifeKimg * 1000.0;
  if (e.rampup > 0) halfLifeImages = std::min(halfLifeImages, double(imagesShown) * e.rampup);
  return std::pow(0.5, double(minibatch) / std::max(halfLifeImages, 1e-8));
}

at::Tensor Trainer::oneHot(const at::Tensor& labels) const {
  if (!labels.defined()) return {};
  return at::one_hot(labels, config_.network.labelSize).to(gParams_.front().scalar_type());
}

at::Tensor Trainer::toDevice(const at::Tensor& t) const {
  if (!t.defined() || t.device() == device_) return t;
  if (device_.is_cuda() && t.is_cpu()) return t.pin_memory().to(device_, /*non_blocking=*/true);
  return t.to(device_);
}

std::pair<int64_t, int64_t> Trainer::skipped() const {
  const auto c = skipCounts_.to(at::kCPU);
  return {int64_t(c[0].item<double>()), int64_t(c[1].item<double>())};
}

StepFigures StepStats::read(const at::Tensor& values) {
  const auto v = values.to(at::kCPU, at::kDouble).contiguous();
  const double* p = v.data_ptr<double>();
  StepFigures f;
  f.dLoss = p[kDLoss];
  f.gLoss = p[kGLoss];
  f.gradientPenalty = p[kGradientPenalty];
  f.drift = p[kDrift];
  f.wasserstein = p[kWasserstein];
  f.labelLoss = p[kLabelLoss];
  f.dSkipped = p[kDSkipped];
  f.gSkipped = p[kGSkipped];
  return f;
}

StepStats Trainer::trainStep(const SchedulePoint& point) {
  TORCH_CHECK(dataset_, "This trainer has no dataset: create it with one to train");
  const int64_t n = point.minibatch;
  const auto indices = sampler_->next(n);
  StepInputs in;
  const auto type = gParams_.front().scalar_type();
  // uint8 crosses to the device (4× fewer bytes than float), then converts there.
  in.reals = toDevice(dataset_->images(indices, point.resolution)).to(type).mul_(2.0 / 255.0).sub_(1.0);
  if (config_.mirror) {
    const auto flip = toDevice(at::rand({n, 1, 1, 1}, rng_, at::TensorOptions().dtype(type)) < 0.5);
    in.reals = at::where(flip, in.reals.flip({3}), in.reals);
  }
  // Drawn on the CPU generator whatever the device, so a seed means the same run everywhere and
  // its state fits in a checkpoint.
  const auto opts = at::TensorOptions().dtype(type);
  in.latentsD = toDevice(at::randn({n, config_.network.latentSize}, rng_, opts));
  in.u = toDevice(at::rand({n, 1, 1, 1}, rng_, opts));
  in.latentsG = toDevice(at::randn({n, config_.network.latentSize}, rng_, opts));
  if (config_.network.labelSize > 0) {
    in.realLabels = toDevice(dataset_->labels(indices));
    // G's labels follow the dataset's label distribution (official get_random_labels_tf).
    in.fakeLabels =
        toDevice(dataset_->labels(at::randint(dataset_->count(), {n}, rng_, at::TensorOptions().dtype(at::kLong))));
  }
  return step(point, in);
}

StepStats Trainer::step(const SchedulePoint& point, const StepInputs& inputs, StepGradients* capture) {
  // Explicit inputs (tests) may arrive on the CPU; the step runs on the trainer's device.
  StepInputs in = inputs;
  for (auto* t : {&in.reals, &in.realLabels, &in.latentsD, &in.u, &in.latentsG, &in.fakeLabels})
    *t = toDevice(*t);
  const int64_t n = in.reals.size(0);
  if (std::floor(point.lod) != std::floor(lastLod) || std::ceil(point.lod) != std::ceil(lastLod)) {
    adamG_->reset();
    adamD_->reset();
  }
  lastLod = point.lod;
  // Outside any recorded step: a fill takes β and α as kernel arguments, read anew every step.
  if (device_.is_cuda()) {
    emaWeight_.fill_(1.0 - emaBeta(n));
    alphaOnDevice_.fill_(point.alpha);
  }
  const auto key = graphKeyFor(point, in, capture != nullptr);
  if (!key) {
    graph_.reset();  // frees its memory pool; stable steps at this key would record it again
    graphKey_.reset();
  }
  auto stats = key ? graphStep(*key, point, in) : deviceStep(point, in, capture, eagerAlpha(point));
  imagesShown += n;
  ++steps;
  return stats;
}

Alpha Trainer::eagerAlpha(const SchedulePoint& point) const {
  // With impl 'reference' on a GPU, an eager step blends by the device α exactly as a recorded one
  // does (ATen's lerp with a tensor weight rounds the backward's 1 − α in float, with a number in
  // double): the reference path then matches replays bit for bit, so a replay that misses α's rise
  // cannot hide behind rounding. The fused kernels ('auto') take α as a number.
  if (device_.is_cuda() && config_.network.opsImpl() == OpsImpl::Reference) return Alpha(point.alpha, alphaOnDevice_);
  return Alpha(point.alpha);
}

std::optional<Trainer::GraphKey> Trainer::graphKeyFor(const SchedulePoint& point, const StepInputs& in,
                                                      bool capturing) const {
  if (!device_.is_cuda() || !config_.cudaGraphs || !StepGraph::supported() || capturing || !graphStats.failure.empty())
    return std::nullopt;
  const int64_t n = in.reals.size(0);
  return GraphKey{point.resolution, n, point.learningRate, in.realLabels.defined(), point.alpha < 1.0};
}

StepStats Trainer::graphStep(const GraphKey& key, const SchedulePoint& point, const StepInputs& in) {
  // Two eager steps at a new key first: cuDNN's benchmark mode times its algorithms on the first
  // step's shapes, and everything a step allocates or caches lazily exists before the capture.
  constexpr int kWarmSteps = 2;
  const std::vector<at::Tensor> inputs{in.reals, in.realLabels, in.latentsD, in.u, in.latentsG, in.fakeLabels};
  // α from the device (alphaOnDevice_, set in step()): one recording serves a whole fade.
  const StepGraph::Body body = [&](const std::vector<at::Tensor>& t) {
    return deviceStep(point, StepInputs{t[0], t[1], t[2], t[3], t[4], t[5]}, nullptr, Alpha(point.alpha, alphaOnDevice_)).values;
  };
  StepStats stats;
  if (graph_ && graphKey_ == key) {
    stats.values = graph_->replay(inputs);
    ++graphStats.replays;
    return stats;
  }
  if (graphKey_ != key) {
    graph_.reset();
    graphKey_ = key;
    graphWarmSteps_ = 0;
  }
  if (graphWarmSteps_ < kWarmSteps) {
    ++graphWarmSteps_;
    stats.values = StepGraph::runEager(device_, inputs, body);
    return stats;
  }
  try {
    graph_ = std::make_unique<StepGraph>(inputs, body);
  } catch (const std::exception& e) {
    // Capture failed before anything ran: this step and the rest run eagerly.
    graph_.reset();
    graphKey_.reset();
    graphStats.failure = std::string("recording the ") + std::to_string(key.resolution) + "² step failed: " +
                         (dynamic_cast<const c10::Error*>(&e) ? static_cast<const c10::Error&>(e).what_without_backtrace()
                                                               : e.what());
    return deviceStep(point, in, nullptr, eagerAlpha(point));
  }
  ++graphStats.captures;
  // Recording ran nothing: the replay is this step.
  stats.values = graph_->replay(inputs);
  ++graphStats.replays;
  return stats;
}

StepStats Trainer::deviceStep(const SchedulePoint& point, const StepInputs& in, StepGradients* capture,
                               const Alpha& alpha) {
  const int64_t res = point.resolution;
  const int64_t n = in.reals.size(0);

  // Reals fade between levels exactly as the networks do (official process_reals, FadeLOD).
  auto reals = in.reals;
  if (alpha.value < 1.0 && res > 4) {
    reals = fadeReals(reals, alpha, config_.network.opsImpl());
  }
  const double gpDivisor = config_.loss.officialGpScale ? double(config_.network.resolution) / double(res) : 1.0;

  // D step: fakes carry no graph; only D's parameters get gradients.
  at::Tensor fakes;
  {
    at::NoGradGuard noGrad;
    fakes = g_->forward(in.latentsD, oneHot(in.realLabels), res, alpha);
  }
  clearGrads(dParams_);
  auto dTerms = discriminatorLoss(d_, reals, fakes, in.realLabels, in.u, res, alpha, config_.loss, gpDivisor);
  // Only D's parameters: the penalty's mixed images are a leaf that needs no gradient of its own.
  torch::autograd::backward({dTerms.loss}, {}, std::nullopt, /*create_graph=*/false, dParams_);
  if (capture) capture->discriminator = cloneGrads(*d_);
  adamD_->step(point.learningRate);  // skipped on the device if a gradient is not finite

  // G step: D's weights are constants here, so no D weight gradients are computed.
  setRequiresGrad(dParams_, false);
  clearGrads(gParams_);
  GeneratorTerms gTerms;
  try {
    const auto gFakes = g_->forward(in.latentsG, oneHot(in.fakeLabels), res, alpha);
    gTerms = generatorLoss(d_, gFakes, in.fakeLabels, res, alpha, config_.loss);
    gTerms.loss.backward();
  } catch (...) {
    setRequiresGrad(dParams_, true);
    throw;
  }
  setRequiresGrad(dParams_, true);
  if (capture) capture->generator = cloneGrads(*g_);
  adamG_->step(point.learningRate);

  {
    at::NoGradGuard noGrad;
    std::vector<at::Tensor> ema, current;
    for (size_t i = 0; i < gParams_.size(); ++i) {
      const auto& known = emaEqual_[i];
      // Adam's fused kernel writes the parameters without bumping their version: a gradient means "updated".
      const bool untouched = known && !gParams_[i].grad().defined() && known->gVersion == gParams_[i]._version() &&
                             known->emaVersion == gEmaParams_[i]._version();
      if (untouched) continue;
      emaEqual_[i].reset();
      ema.push_back(gEmaParams_[i]);
      current.push_back(gParams_[i]);
    }
    if (!ema.empty()) {
      if (device_.is_cuda()) {
        // The weight 1 − β from the device (emaWeight_, set in step()), so a recorded CUDA graph
        // follows β's ramp-up; a + w·(b − a) is what lerp computes for w < 0.5.
        auto delta = at::_foreach_sub(current, ema);
        at::_foreach_mul_(delta, emaWeight_);
        at::_foreach_add_(ema, delta);
      } else {
        at::_foreach_lerp_(ema, current, 1.0 - emaBeta(n));
      }
    }
  }
  at::NoGradGuard noGrad;
  StepStats stats;
  const auto losses = at::stack({dTerms.loss, gTerms.loss, dTerms.gradientPenalty, dTerms.drift, dTerms.wasserstein,
                                 dTerms.labelLoss + gTerms.labelLoss});
  const auto skipped = at::cat({adamD_->skipped(), adamG_->skipped()}).to(at::kDouble);
  skipCounts_.add_(skipped);
  stats.values = at::cat({losses.to(at::kDouble), skipped});
  return stats;
}

at::Tensor Trainer::sample(const at::Tensor& latents, const at::Tensor& labels, int64_t resolution, double alpha,
                           bool ema) {
  at::NoGradGuard noGrad;
  auto& net = ema ? gEma_ : g_;
  const auto l = labels.defined() ? labels.to(gParams_.front().scalar_type()) : labels;
  return net->forward(latents.to(device_, gParams_.front().scalar_type()), l.defined() ? l.to(device_) : l, resolution, alpha);
}

std::pair<NamedTensors, std::map<std::string, double>> Trainer::exportState() const {
  NamedTensors t;
  auto add = [&](const std::string& prefix, const torch::nn::Module& m) {
    for (auto& [k, v] : namedParameters(m, prefix)) t.emplace_back(k, v.detach());
  };
  add("G.", *g_);
  add("D.", *d_);
  add("G_ema.", *gEma_);
  auto addAdam = [&](const std::string& prefix, Adam& adam, const torch::nn::Module& m) {
    const auto names = namedParameters(m);
    for (size_t i = 0; i < names.size(); ++i) {
      t.emplace_back(prefix + "m." + names[i].first, adam.firstMoments()[i]);
      t.emplace_back(prefix + "v." + names[i].first, adam.secondMoments()[i]);
    }
  };
  addAdam("adam_G.", *adamG_, *g_);
  addAdam("adam_D.", *adamD_, *d_);
  t.emplace_back("rng.train", rng_.get_state());
  const auto [skippedD, skippedG] = skipped();
  std::map<std::string, double> s{
      {"imagesShown", double(imagesShown)}, {"steps", double(steps)},
      {"skippedD", double(skippedD)},       {"skippedG", double(skippedG)},
      {"lastLod", lastLod},                 {"adamG.steps", double(adamG_->steps())},
      {"adamD.steps", double(adamD_->steps())}, {"phase.resolution", double(phase.resolution)},
      {"phase.fade", phase.fade ? 1.0 : 0.0}, {"phase.images", double(phase.images)},
      {"phase.done", double(phase.done)},
  };
  if (sampler_) {
    t.emplace_back("rng.sampler", sampler_->generator().get_state());
    t.emplace_back("sampler.permutation", sampler_->permutation());
    s["sampler.position"] = double(sampler_->position);
    s["sampler.epoch"] = double(sampler_->epoch);
  }
  return {t, s};
}

void Trainer::importState(const NamedTensors& tensors, const std::map<std::string, double>& s) {
  auto find = [&](const std::string& name) -> const at::Tensor& {
    for (const auto& [k, v] : tensors)
      if (k == name) return v;
    TORCH_CHECK(false, "The checkpoint lacks '", name, "'");
  };
  auto scalar = [&](const std::string& name) {
    const auto it = s.find(name);
    TORCH_CHECK(it != s.end(), "The checkpoint lacks the value '", name, "'");
    return it->second;
  };
  // A recorded step bakes in which EMA entries it skips (recordEmaEquality below): record anew.
  graph_.reset();
  graphKey_.reset();
  assignParameters(*g_, tensors, "G.");
  assignParameters(*d_, tensors, "D.");
  assignParameters(*gEma_, tensors, "G_ema.");
  recordEmaEquality();
  auto loadAdam = [&](const std::string& prefix, Adam& adam, const torch::nn::Module& m) {
    at::NoGradGuard noGrad;
    const auto names = namedParameters(m);
    for (size_t i = 0; i < names.size(); ++i) {
      adam.firstMoments()[i].copy_(find(prefix + "m." + names[i].first));
      adam.secondMoments()[i].copy_(find(prefix + "v." + names[i].first));
    }
  };
  loadAdam("adam_G.", *adamG_, *g_);
  loadAdam("adam_D.", *adamD_, *d_);
  adamG_->setSteps(int64_t(scalar("adamG.steps")));
  adamD_->setSteps(int64_t(scalar("adamD.steps")));
  rng_.set_state(find("rng.train"));
  imagesShown = int64_t(scalar("imagesShown"));
  steps = int64_t(scalar("steps"));
  skipCounts_[0].fill_(scalar("skippedD"));
  skipCounts_[1].fill_(scalar("skippedG"));
  lastLod = scalar("lastLod");
  phase = {int64_t(scalar("phase.resolution")), scalar("phase.fade") != 0.0, int64_t(scalar("phase.images")),
           int64_t(scalar("phase.done"))};
  if (sampler_) {
    sampler_->generator().set_state(find("rng.sampler"));
    const auto& perm = find("sampler.permutation");
    TORCH_CHECK(perm.numel() == dataset_->count(), "The checkpoint's sampler covers ", perm.numel(),
                " images but the dataset holds ", dataset_->count(), ": resume with the dataset it was trained on");
    sampler_->permutation() = perm.clone();
    sampler_->position = int64_t(scalar("sampler.position"));
    sampler_->epoch = int64_t(scalar("sampler.epoch"));
  }
}

}  // namespace progan
