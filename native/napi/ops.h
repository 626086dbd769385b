#pragma once
#include <napi.h>

namespace sparq::napi {

// Adds every op, as name(...) and nameAsync(..., cancelToken), to the addon's exports.
void exportOps(Napi::Env env, Napi::Object exports);

}  // namespace sparq::napi
