// JS handle on a Trainer. Training loops are queued as libuv work (AsyncProgressQueueWorker), which
// hands them to the compute thread (train/compute_thread.h): the event loop stays free, every tick
// report is queued and delivered in order, and the returned promise settles only after the last
// report.
#include "binding/trainer_wrap.h"

#include <ATen/ATen.h>

#include "binding/js_interop.h"
#include "train/compute_thread.h"
#include "train/step_profiler.h"
#include "train/training_loop.h"

namespace progan::binding {

namespace {

Napi::Object tickToJs(Napi::Env env, const TickReport& r) {
  auto o = Napi::Object::New(env);
  auto num = [&](const char* k, double v) { o.Set(k, Napi::Number::New(env, v)); };
  num("imagesShown", double(r.imagesShown));
  num("steps", double(r.steps));
  num("tickSteps", double(r.tickSteps));
  num("resolution", double(r.resolution));
  num("minibatch", double(r.minibatch));
  num("alpha", r.alpha);
  num("lod", r.lod);
  num("learningRate", r.learningRate);
  o.Set("phase", r.fading ? "fade" : "stable");
  num("dLoss", r.dLoss);
  num("gLoss", r.gLoss);
  num("gradientPenalty", r.gradientPenalty);
  num("drift", r.drift);
  num("wasserstein", r.wasserstein);
  num("labelLoss", r.labelLoss);
  num("imagesPerSecond", r.imagesPerSecond);
  num("seconds", r.seconds);
  num("skippedD", double(r.skippedD));
  num("skippedG", double(r.skippedG));
  o.Set("finished", r.finished);
  o.Set("stopped", r.stopped);
  return o;
}

std::map<int64_t, double> numberMap(const Napi::Object& o) {
  std::map<int64_t, double> out;
  const auto keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    const auto key = keys.Get(i).ToString().Utf8Value();
    out[std::stoll(key)] = o.Get(key).As<Napi::Number>().DoubleValue();
  }
  return out;
}

class TrainWorker : public Napi::AsyncProgressQueueWorker<TickReport> {
 public:
  using Job = std::function<TickReport(Trainer&, const TickCallback&)>;

  // A non-empty `profile` records the whole run into that trace file (step_profiler.h).
  TrainWorker(Napi::Env env, TrainerWrap* owner, Napi::Object self, Napi::Function onProgress, std::string profile,
              Job job)
      : Napi::AsyncProgressQueueWorker<TickReport>(env, "progan:train"),
        deferred_(Napi::Promise::Deferred::New(env)),
        owner_(owner),
        profile_(std::move(profile)),
        job_(std::move(job)) {
    self_ = Napi::Persistent(self);
    onProgress_ = Napi::Persistent(onProgress);
  }

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override {
    auto& trainer = owner_->trainer();
    std::unique_lock<std::mutex> lock(trainer.busy);
    try {
      const TickCallback onTick = [&](const TickReport& r) { progress.Send(&r, 1); };
      runOnComputeThread([&] {
        if (profile_.empty()) {
          result_ = job_(trainer, onTick);
        } else {
          profileInto(profile_, trainer.device().is_cuda(), [&] { result_ = job_(trainer, onTick); });
        }
      }, int(trainer.config().threads));
    } catch (const c10::Error& e) {
      SetError(e.what_without_backtrace());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnProgress(const TickReport* data, size_t count) override {
    Napi::HandleScope scope(Env());
    for (size_t i = 0; i < count; ++i) {
      try {
        onProgress_.Call({tickToJs(Env(), data[i])});
      } catch (const Napi::Error& e) {
        // A throwing progress handler must not take the process down; report it on stderr.
        fprintf(stderr, "progan: onProgress threw: %s\n", e.Message().c_str());
      }
    }
  }

  void OnOK() override { deferred_.Resolve(tickToJs(Env(), result_)); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  TrainerWrap* owner_;
  Napi::ObjectReference self_;  // keeps the trainer alive while the worker runs
  Napi::FunctionReference onProgress_;
  std::string profile_;
  Job job_;
  TickReport result_;
};

// Synchronous calls refuse while a loop runs rather than blocking the event loop on the mutex.
std::unique_lock<std::mutex> lockIdle(Trainer& t) {
  std::unique_lock<std::mutex> lock(t.busy, std::try_to_lock);
  if (!lock.owns_lock()) throw std::runtime_error("The trainer is busy training; wait for the running phase to finish or abort it");
  return lock;
}

// The trace file of a profiled run, or "" for none; prepares the profiler on this (the JS) thread.
std::string profilePath(const Napi::Value& v, const Trainer& trainer) {
  if (!v.IsString()) return {};
  prepareProfiling(trainer.device().is_cuda());
  return v.As<Napi::String>().Utf8Value();
}

at::Tensor labelIndices(const Napi::Value& v, const char* name) {
  auto t = optionalTensor(v, name);
  return t.defined() ? t.to(at::kLong) : t;
}

}  // namespace

ScheduleConfig scheduleConfigFrom(const Napi::Object& o) {
  ScheduleConfig s;
  s.startResolution = integerField(o, "startResolution");
  s.finalResolution = integerField(o, "finalResolution");
  s.stableKimg = numberField(o, "stableKimg");
  s.fadeKimg = numberField(o, "fadeKimg");
  for (auto [k, v] : numberMap(o.Get("minibatch").As<Napi::Object>())) s.minibatch[k] = int64_t(v);
  s.minibatchBase = integerField(o, "minibatchBase");
  s.learningRate = numberMap(o.Get("learningRate").As<Napi::Object>());
  s.learningRateBase = numberField(o, "learningRateBase");
  return s;
}

Napi::Object schedulePointToJs(Napi::Env env, const SchedulePoint& p) {
  auto o = Napi::Object::New(env);
  o.Set("resolution", Napi::Number::New(env, double(p.resolution)));
  o.Set("lod", Napi::Number::New(env, p.lod));
  o.Set("alpha", Napi::Number::New(env, p.alpha));
  o.Set("phase", p.fading ? "fade" : "stable");
  o.Set("minibatch", Napi::Number::New(env, double(p.minibatch)));
  o.Set("learningRate", Napi::Number::New(env, p.learningRate));
  return o;
}

TrainingConfig trainingConfigFrom(const Napi::Object& o) {
  TrainingConfig c;
  c.network = networkConfigFrom(o.Get("network").As<Napi::Object>());
  c.schedule = scheduleConfigFrom(o.Get("schedule").As<Napi::Object>());
  const auto loss = o.Get("loss").As<Napi::Object>();
  c.loss.lambda = numberField(loss, "lambda");
  c.loss.gamma = numberField(loss, "gamma");
  c.loss.drift = numberField(loss, "drift");
  c.loss.officialGpScale = stringField(loss, "gradientPenaltyScale") == "official";
  c.loss.conditionWeight = numberField(loss, "conditionWeight");
  const auto adam = o.Get("adam").As<Napi::Object>();
  c.adam.beta1 = numberField(adam, "beta1");
  c.adam.beta2 = numberField(adam, "beta2");
  c.adam.epsilon = numberField(adam, "epsilon");
  const auto ema = o.Get("ema").As<Napi::Object>();
  c.ema.beta = numberField(ema, "beta");
  c.ema.halfLifeKimg = numberField(ema, "halfLifeKimg");
  c.ema.rampup = numberField(ema, "rampup");
  c.mirror = boolField(o, "mirror");
  c.seed = uint64_t(integerField(o, "seed"));
  c.threads = integerField(o, "threads");
  c.device = stringField(o, "device");
  c.cudaGraphs = boolField(o, "cudaGraphs");
  c.deterministic = boolField(o, "deterministic");
  const auto ds = o.Get("dataset");
  if (ds.IsObject()) {
    const auto d = ds.As<Napi::Object>();
    c.dataset.path = stringField(d, "path");
    c.dataset.count = integerField(d, "count");
    c.dataset.channels = integerField(d, "channels");
    c.dataset.resolution = integerField(d, "resolution");
    c.dataset.labelsOffset = integerField(d, "labelsOffset");
    c.dataset.fileSize = integerField(d, "fileSize");
    const auto levels = d.Get("levels").As<Napi::Array>();
    for (uint32_t i = 0; i < levels.Length(); ++i) {
      const auto l = levels.Get(i).As<Napi::Object>();
      c.dataset.levels.push_back({integerField(l, "resolution"), integerField(l, "offset")});
    }
  }
  return c;
}

Napi::Function TrainerWrap::Define(Napi::Env env) {
  return DefineClass(env, "Trainer",
                     {
                         InstanceMethod("runSchedule", &TrainerWrap::RunSchedule),
                         InstanceMethod("runPhase", &TrainerWrap::RunPhase),
                         InstanceMethod("requestStop", &TrainerWrap::RequestStop),
                         InstanceMethod("sample", &TrainerWrap::Sample),
                         InstanceMethod("exportState", &TrainerWrap::ExportState),
                         InstanceMethod("importState", &TrainerWrap::ImportState),
                         InstanceMethod("debugStep", &TrainerWrap::DebugStep),
                         InstanceMethod("status", &TrainerWrap::Status),
                         InstanceMethod("parameters", &TrainerWrap::Parameters),
                         InstanceMethod("setParameters", &TrainerWrap::SetParameters),
                     });
}

TrainerWrap::TrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerWrap>(info) {
  guarded(info, [&] {
    const auto config = trainingConfigFrom(info[0].As<Napi::Object>());
    runOnComputeThread([&] { trainer_ = std::make_unique<Trainer>(config); }, int(config.threads));
    return info.Env().Undefined();
  });
}

Napi::Value TrainerWrap::RunSchedule(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const int64_t until = info[0].As<Napi::Number>().Int64Value();
    const int64_t tick = info[1].As<Napi::Number>().Int64Value();
    trainer_->stopRequested = false;  // a stop asked for before this call belonged to an earlier run
    auto* worker = new TrainWorker(info.Env(), this, info.This().As<Napi::Object>(), info[2].As<Napi::Function>(),
                                   profilePath(info[3], *trainer_),
                                   [until, tick](Trainer& t, const TickCallback& cb) { return runSchedule(t, until, tick, cb); });
    auto promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

Napi::Value TrainerWrap::RunPhase(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const int64_t resolution = info[0].As<Napi::Number>().Int64Value();
    const bool fade = info[1].As<Napi::Boolean>().Value();
    const int64_t images = info[2].As<Napi::Number>().Int64Value();
    const int64_t tick = info[3].As<Napi::Number>().Int64Value();
    trainer_->stopRequested = false;
    auto* worker = new TrainWorker(info.Env(), this, info.This().As<Napi::Object>(), info[4].As<Napi::Function>(),
                                   profilePath(info[5], *trainer_), [=](Trainer& t, const TickCallback& cb) { return runPhase(t, resolution, fade, images, tick, cb); });
    auto promise = worker->promise();
    worker->Queue();
    return promise;
  });
}

Napi::Value TrainerWrap::RequestStop(const Napi::CallbackInfo& info) {
  trainer_->stopRequested = true;
  return info.Env().Undefined();
}

Napi::Value TrainerWrap::Sample(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto lock = lockIdle(*trainer_);
    const auto latents = toTorch(info[0], "latents");
    const auto labels = optionalTensor(info[1], "labels");
    const int64_t resolution = info[2].As<Napi::Number>().Int64Value();
    const double alpha = info[3].As<Napi::Number>().DoubleValue();
    const bool ema = info[4].As<Napi::Boolean>().Value();
    at::Tensor images;
    runOnComputeThread([&] { images = trainer_->sample(latents, labels, resolution, alpha, ema); },
                       int(trainer_->config().threads));
    return toJs(info.Env(), images);
  });
}

Napi::Value TrainerWrap::ExportState(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto lock = lockIdle(*trainer_);
    const auto [tensors, scalars] = trainer_->exportState();
    auto env = info.Env();
    auto list = namedToJs(env, tensors);
    auto s = Napi::Object::New(env);
    for (const auto& [k, v] : scalars) s.Set(k, Napi::Number::New(env, v));
    auto out = Napi::Object::New(env);
    out.Set("tensors", list);
    out.Set("scalars", s);
    return out;
  });
}

Napi::Value TrainerWrap::ImportState(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto lock = lockIdle(*trainer_);
    const auto tensors = namedFromJs(info[0], "checkpoint tensors");
    std::map<std::string, double> scalars;
    const auto o = info[1].As<Napi::Object>();
    const auto keys = o.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      const auto k = keys.Get(i).ToString().Utf8Value();
      scalars[k] = o.Get(k).As<Napi::Number>().DoubleValue();
    }
    trainer_->importState(tensors, scalars);
    return info.Env().Undefined();
  });
}

Napi::Value TrainerWrap::DebugStep(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto lock = lockIdle(*trainer_);
    const auto p = info[0].As<Napi::Object>();
    SchedulePoint point = pointFor(trainer_->config().schedule, integerField(p, "resolution"), numberField(p, "alpha"));
    point.learningRate = numberField(p, "learningRate");
    const auto in = info[1].As<Napi::Object>();
    StepInputs inputs;
    inputs.reals = toTorch(in.Get("reals"), "reals");
    inputs.realLabels = labelIndices(in.Get("realLabels"), "realLabels");
    inputs.latentsD = toTorch(in.Get("latentsD"), "latentsD");
    inputs.u = toTorch(in.Get("u"), "u");
    inputs.latentsG = toTorch(in.Get("latentsG"), "latentsG");
    inputs.fakeLabels = labelIndices(in.Get("fakeLabels"), "fakeLabels");
    StepGradients grads;
    StepFigures s;
    runOnComputeThread([&] { s = StepStats::read(trainer_->step(point, inputs, &grads).values); },
                       int(trainer_->config().threads));
    auto env = info.Env();
    auto stats = Napi::Object::New(env);
    stats.Set("dLoss", s.dLoss);
    stats.Set("gLoss", s.gLoss);
    stats.Set("gradientPenalty", s.gradientPenalty);
    stats.Set("drift", s.drift);
    stats.Set("wasserstein", s.wasserstein);
    stats.Set("labelLoss", s.labelLoss);
    stats.Set("dSkipped", s.dSkipped != 0.0);
    stats.Set("gSkipped", s.gSkipped != 0.0);
    auto out = Napi::Object::New(env);
    out.Set("stats", stats);
    out.Set("discriminatorGradients", namedToJs(env, grads.discriminator));
    out.Set("generatorGradients", namedToJs(env, grads.generator));
    return out;
  });
}

Napi::Value TrainerWrap::Status(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto& t = *trainer_;
  auto o = Napi::Object::New(env);
  o.Set("imagesShown", Napi::Number::New(env, double(t.imagesShown)));
  o.Set("steps", Napi::Number::New(env, double(t.steps)));
  const auto [skippedD, skippedG] = t.skipped();
  o.Set("skippedD", Napi::Number::New(env, double(skippedD)));
  o.Set("skippedG", Napi::Number::New(env, double(skippedG)));
  o.Set("lastLod", Napi::Number::New(env, t.lastLod));
  auto graphs = Napi::Object::New(env);
  graphs.Set("captures", Napi::Number::New(env, double(t.graphStats.captures)));
  graphs.Set("replays", Napi::Number::New(env, double(t.graphStats.replays)));
  graphs.Set("failure", t.graphStats.failure.empty() ? env.Null() : Napi::String::New(env, t.graphStats.failure));
  o.Set("cudaGraphs", graphs);
  auto ph = Napi::Object::New(env);
  ph.Set("resolution", Napi::Number::New(env, double(t.phase.resolution)));
  ph.Set("phase", t.phase.fade ? "fade" : "stable");
  ph.Set("images", Napi::Number::New(env, double(t.phase.images)));
  ph.Set("done", Napi::Number::New(env, double(t.phase.done)));
  o.Set("phase", ph);
  return o;
}

torch::nn::Module& TrainerWrap::network(const Napi::Value& which) {
  const auto name = which.IsString() ? which.As<Napi::String>().Utf8Value() : "";
  if (name == "generator") return *trainer_->generator();
  if (name == "generatorEma") return *trainer_->generatorEma();
  if (name == "discriminator") return *trainer_->discriminator();
  throw std::invalid_argument("Expected 'generator', 'generatorEma' or 'discriminator' but received '" + name + "'");
}

Napi::Value TrainerWrap::Parameters(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto lock = lockIdle(*trainer_);
    return namedToJs(info.Env(), namedParameters(network(info[0])));
  });
}

Napi::Value TrainerWrap::SetParameters(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    auto lock = lockIdle(*trainer_);
    assignParameters(network(info[0]), namedFromJs(info[1], "parameters"));
    return info.Env().Undefined();
  });
}

}  // namespace progan::binding
