#pragma once
#include <napi.h>

#include <memory>

#include "train/trainer.h"

namespace progan::binding {

TrainingConfig trainingConfigFrom(const Napi::Object& o);
ScheduleConfig scheduleConfigFrom(const Napi::Object& o);
Napi::Object schedulePointToJs(Napi::Env env, const SchedulePoint& p);

class TrainerWrap : public Napi::ObjectWrap<TrainerWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit TrainerWrap(const Napi::CallbackInfo& info);

  Trainer& trainer() { return *trainer_; }

 private:
  Napi::Value RunSchedule(const Napi::CallbackInfo& info);
  Napi::Value RunPhase(const Napi::CallbackInfo& info);
  Napi::Value RequestStop(const Napi::CallbackInfo& info);
  Napi::Value Sample(const Napi::CallbackInfo& info);
  Napi::Value ExportState(const Napi::CallbackInfo& info);
  Napi::Value ImportState(const Napi::CallbackInfo& info);
  Napi::Value DebugStep(const Napi::CallbackInfo& info);
  Napi::Value Status(const Napi::CallbackInfo& info);
  Napi::Value Parameters(const Napi::CallbackInfo& info);
  Napi::Value SetParameters(const Napi::CallbackInfo& info);

  torch::nn::Module& network(const Napi::Value& which);

  std::unique_ptr<Trainer> trainer_;
};

}  // namespace progan::binding
