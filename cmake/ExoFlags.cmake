# SPDX-License-Identifier: Apache-2.0
# Warnings and sanitizers for everything built in this tree.
set(EXO_WARNINGS -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
    -Wpointer-arith -Wvla -Wundef
    -Wno-unused-parameter)
if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
    list(APPEND EXO_WARNINGS -Wlogical-op -Wduplicated-cond)
endif()
if(EXO_WERROR)
    list(APPEND EXO_WARNINGS -Werror)
endif()
add_compile_options("$<$<COMPILE_LANGUAGE:C>:${EXO_WARNINGS}>")
add_compile_options(-fno-strict-aliasing -fvisibility=hidden)

if(EXO_SANITIZE)
    add_compile_options(-fsanitize=${EXO_SANITIZE} -fno-omit-frame-pointer
                        -fno-sanitize-recover=all)
    add_link_options(-fsanitize=${EXO_SANITIZE})
endif()


# Per-ISA kernel files get their instruction sets here and nowhere else; which one runs is chosen
# at run time from the CPU's features, so the binary still runs on older CPUs.
set(EXO_ISA_FLAGS_AVX2 -mavx2 -mfma -mf16c)
set(EXO_ISA_FLAGS_AVX512 -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni
    -mavx512dq)

# libFuzzer steers by coverage of the code under test: instrument the libraries too, not only the
# fuzz target that tests/CMakeLists.txt links with -fsanitize=fuzzer.
if(EXO_BUILD_FUZZ)
    add_compile_options(-fsanitize=fuzzer-no-link)
endif()
