{
  "targets": [
    {
      "target_name": "sparq_cpu",
      "sources": [
        "native/core/backend.cpp",
        "native/core/ops.cpp",
        "native/core/packed_formats.cpp",
        "native/core/pool.cpp",
        "native/cpu/alps.cpp",
        "native/cpu/column_sweep.cpp",
        "native/cpu/convert.cpp",
        "native/cpu/cpu_backend.cpp",
        "native/cpu/elementwise.cpp",
        "native/cpu/isa.cpp",
        "native/cpu/linalg.cpp",
        "native/cpu/mask.cpp",
        "native/cpu/nn.cpp",
        "native/cpu/nn_backward.cpp",
        "native/cpu/packed_linear.cpp",
        "native/cpu/quant.cpp",
        "native/napi/addon.cpp",
        "native/napi/args.cpp",
        "native/napi/ops.cpp"
      ],
      "include_dirs": [
        "native",
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS"
      ],
      "cflags!": [
        "-fno-exceptions"
      ],
      "cflags_cc!": [
        "-fno-exceptions",
        "-fno-rtti"
      ],
      "cflags": [
        "-O3",
        "-fexceptions",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        "-Wno-maybe-uninitialized"
      ],
      "cflags_cc": [
        "-O3",
        "-std=c++17",
        "-fexceptions",
        "-frtti"
      ],
      "libraries": [
        "-lopenblas"
      ],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "OTHER_CPLUSPLUSFLAGS": [
          "-std=c++17",
          "-O3"
        ]
      }
    }
  ]
}
