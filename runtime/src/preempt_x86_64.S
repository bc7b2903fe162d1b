/* SPDX-License-Identifier: BSD-3-Clause */
// Asynchronous preemption, x86-64: the function the SIGURG handler makes
// an interrupted goroutine "call" (see preempt.cpp).
//
// On entry the handler has set up the stack as if the interrupted code had
// executed `call goro_async_preempt` 128 bytes below its stack pointer
// (past the System V red zone, which a leaf function may be using):
//
//     [rsp]          interrupted rip
//     [rsp+8 ...]    128 bytes of untouched red zone
//     [rsp+136]      the interrupted rsp
//
// It saves every register the interrupted code may be using — general
// purpose, flags, and the whole extended state (x87/SSE/AVX/… via xsave,
// or fxsave where the OS has not enabled xsave) — calls
// goro_async_preempt2 (which yields the goroutine), restores everything and
// returns to the interrupted instruction with `ret $128`.
        .text
        .globl  goro_async_preempt
        .type   goro_async_preempt, @function
        .p2align 4
goro_async_preempt:
        .cfi_startproc
        pushfq
        pushq   %rax
        pushq   %rbx
        pushq   %rcx
        pushq   %rdx
        pushq   %rsi
        pushq   %rdi
        pushq   %rbp
        pushq   %r8
        pushq   %r9
        pushq   %r10
        pushq   %r11
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        movq    %rsp, %rbx              // callee-saved: the frame to return to
        movq    goro_xsave_size(%rip), %rcx
        testq   %rcx, %rcx
        jz      1f
        subq    %rcx, %rsp
        andq    $-64, %rsp
        // xsave needs its 64-byte header zeroed on first use.
        xorl    %eax, %eax
        movq    %rax, 512(%rsp)
        movq    %rax, 520(%rsp)
        movq    %rax, 528(%rsp)
        movq    %rax, 536(%rsp)
        movq    %rax, 544(%rsp)
        movq    %rax, 552(%rsp)
        movq    %rax, 560(%rsp)
        movq    %rax, 568(%rsp)
        movl    $-1, %eax
        movl    $-1, %edx
        xsave64 (%rsp)
        call    goro_async_preempt2
        movl    $-1, %eax
        movl    $-1, %edx
        xrstor64 (%rsp)
        jmp     2f
1:
        subq    $512, %rsp
        andq    $-64, %rsp
        fxsave64 (%rsp)
        call    goro_async_preempt2
        fxrstor64 (%rsp)
2:
        movq    %rbx, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %r11
        popq    %r10
        popq    %r9
        popq    %r8
        popq    %rbp
        popq    %rdi
        popq    %rsi
        popq    %rdx
        popq    %rcx
        popq    %rbx
        popq    %rax
        popfq
        ret     $128
        .cfi_endproc
        .size   goro_async_preempt, .-goro_async_preempt

        .section .note.GNU-stack,"",@progbits
