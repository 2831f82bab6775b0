# SPDX-License-Identifier: Apache-2.0
# Every dependency comes from Debian's packages (scripts/install-deps installs them) and is found
# with pkg-config, so the build shape is the same on every machine.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

pkg_check_modules(LIBUV REQUIRED IMPORTED_TARGET libuv>=1.44)
pkg_check_modules(LIBZMQ REQUIRED IMPORTED_TARGET libzmq>=4.3)
pkg_check_modules(CJSON REQUIRED IMPORTED_TARGET libcjson>=1.7)
pkg_check_modules(HWLOC REQUIRED IMPORTED_TARGET hwloc>=2.0)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium>=1.0.18)
# The tokenizer's pre-tokenizer regexes (Unicode categories, lookahead) run on PCRE2.
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(OPENCL REQUIRED IMPORTED_TARGET OpenCL)
pkg_check_modules(VULKAN REQUIRED IMPORTED_TARGET vulkan)
if(EXO_BUILD_TESTS)
    pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka>=1.1)
endif()

# http-parser ships no pkg-config file in Debian.
find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h REQUIRED)
find_library(HTTP_PARSER_LIBRARY http_parser REQUIRED)
add_library(exo::http_parser UNKNOWN IMPORTED)
set_target_properties(exo::http_parser PROPERTIES IMPORTED_LOCATION ${HTTP_PARSER_LIBRARY}
                      INTERFACE_INCLUDE_DIRECTORIES ${HTTP_PARSER_INCLUDE_DIR})

find_library(LIBM m)
find_library(LIBDL dl)
