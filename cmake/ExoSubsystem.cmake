# SPDX-License-Identifier: Apache-2.0
# exo_add_subsystem(<name> [DEPS targets...])
# Builds every .c file in the calling directory into the static library exo_<name>, links its
# dependencies and registers it in EXO_LIBS. Subsystems are added in dependency order by the
# top-level CMakeLists.txt. A subsystem with no sources yet is skipped.
function(exo_add_subsystem name)
    cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
    file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.c)
    if(NOT sources)
        return()
    endif()
    # A subsystem dependency that has no sources yet (so no target) is simply not linked.
    set(deps "")
    foreach(dep ${ARG_DEPS})
        if(NOT dep MATCHES "^exo_" OR TARGET ${dep})
            list(APPEND deps ${dep})
        endif()
    endforeach()
    add_library(exo_${name} STATIC ${sources})
    target_link_libraries(exo_${name} PUBLIC ${deps})
    set_property(GLOBAL APPEND PROPERTY EXO_LIBS exo_${name})
endfunction()
