/* Marks what libchexmask_rt.so exports; everything else in the library is hidden. */
#ifndef CHEXMASK_RT_API_H
#define CHEXMASK_RT_API_H

#if defined(_WIN32)
#define CHEXMASK_RT_API
#else
#define CHEXMASK_RT_API __attribute__((visibility("default")))
#endif

#endif /* CHEXMASK_RT_API_H */
