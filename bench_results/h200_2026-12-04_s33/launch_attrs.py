"""Session 33, call 8: the package's kernels loaded as Triton's own loader loads them. torch's AOTInductor loadKernel
(torch/_inductor/codegen/cuda/device_op_overrides.py, `kernel_driver`) sets a kernel's dynamic shared-memory limit to
exactly what it uses; Triton's loader (third_party/nvidia/backend/driver.c) gives a kernel above 48 KiB the cache
preference for shared memory and the device's whole opt-in. Patched here, in this process only, then
kernel_profile.py's profile of both engines (a fresh machine: the package is built with the patch).

    PYTHONPATH=. python3 launch_attrs.py OUT_DIR [preset] [batch] [forwards]
"""

import batchvoc  # noqa: F401  before torch (native.py)

# isort: split

import re
import sys
from pathlib import Path

from torch._inductor.codegen.cuda.device_op_overrides import CUDADeviceOpOverrides

sys.path.insert(0, str(Path(__file__).parent))
import kernel_profile  # noqa: E402

SET_LIMIT = re.compile(r"cuFuncSetAttribute\(\s*func,\s*CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,\s*"
                       r"sharedMemBytes\s*\)")  # fmt: skip
HELPER = """
            static inline CUresult sharedLikeTriton(CUfunction func, uint32_t sharedMemBytes) {
                CUdevice device;
                int optin = 0, fixed = 0;
                if (sharedMemBytes <= 49152 || cuCtxGetDevice(&device) != CUDA_SUCCESS
                        || cuDeviceGetAttribute(&optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, device)
                           != CUDA_SUCCESS
                        || cuFuncGetAttribute(&fixed, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, func) != CUDA_SUCCESS
                        || optin <= 49152) {
                    return cuFuncSetAttribute(func, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sharedMemBytes);
                }
                CUresult set = cuFuncSetCacheConfig(func, CU_FUNC_CACHE_PREFER_SHARED);
                if (set != CUDA_SUCCESS) return set;
                return cuFuncSetAttribute(func, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, optin - fixed);
            }
"""
ORIGINAL = CUDADeviceOpOverrides.kernel_driver


def kernel_driver(self) -> str:
    text = SET_LIMIT.sub("sharedLikeTriton(func, sharedMemBytes)", ORIGINAL(self))
    first = text.index("static inline CUfunction loadKernel(")
    return text[:first] + HELPER.strip() + "\n\n            " + text[first:]


def main() -> None:
    patched = kernel_driver(CUDADeviceOpOverrides())
    count = patched.count("CUDA_DRIVER_CHECK(sharedLikeTriton(func, sharedMemBytes))")
    print("loadKernel calls patched:", count, flush=True)
    if count < 1:
        sys.exit("this torch's loadKernel has no line to patch")
    CUDADeviceOpOverrides.kernel_driver = kernel_driver
    kernel_profile.main()


if __name__ == "__main__":
    main()
