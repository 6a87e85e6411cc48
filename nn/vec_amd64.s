//go:build amd64 && !purego

#include "textflag.h"

// func addToAVX(dst, src *float32, n int)
//
// dst[i] += src[i] for i < n, n a multiple of 8, with AVX.
TEXT ·addToAVX(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   done
	CMPQ CX, $4
	JB   tail
loop4:
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VADDPS (SI), Y0, Y0
	VADDPS 32(SI), Y1, Y1
	VADDPS 64(SI), Y2, Y2
	VADDPS 96(SI), Y3, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	ADDQ $128, SI
	SUBQ $4, CX
	CMPQ CX, $4
	JAE  loop4
	TESTQ CX, CX
	JZ   done
tail:
	VMOVUPS (DI), Y0
	VADDPS (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	DECQ CX
	JNZ  tail
done:
	VZEROUPPER
	RET

// func reluAVX(y, x *float32, n int)
//
// y[i] = x[i] with its bits cleared when the sign bit is set, for i < n, n a multiple of 8
// (the bitwise form of the Go loop in unaryRun).
TEXT ·reluAVX(SB), NOSPLIT, $0-24
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   reludone
reluloop:
	VMOVDQU (SI), Y0
	VPSRAD  $31, Y0, Y1
	VPANDN  Y0, Y1, Y0
	VMOVDQU Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ  reluloop
reludone:
	VZEROUPPER
	RET

// func reluBackAVX(ga, gr, y *float32, n int)
//
// ga[i] += gr[i] where the bits of y[i] are not all zero, else ga[i] += +0, for i < n, n a
// multiple of 8 (the bitwise form of the Go loop in unaryBack).
TEXT ·reluBackAVX(SB), NOSPLIT, $0-32
	MOVQ ga+0(FP), DI
	MOVQ gr+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ   rbdone
	VPXOR Y3, Y3, Y3
rbloop:
	VMOVDQU (DX), Y0
	VPCMPEQD Y3, Y0, Y0
	VMOVDQU (SI), Y1
	VPANDN  Y1, Y0, Y1
	VADDPS  (DI), Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	DECQ CX
	JNZ  rbloop
rbdone:
	VZEROUPPER
	RET

// func reluBackSetAVX(ga, gr, y *float32, n int)
//
// ga[i] = gr[i] where the bits of y[i] are not all zero, else +0, for i < n, n a multiple
// of 8 (reluBackAVX for a fresh gradient buffer).
TEXT ·reluBackSetAVX(SB), NOSPLIT, $0-32
	MOVQ ga+0(FP), DI
	MOVQ gr+8(FP), SI
	MOVQ y+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ   rsdone
	VPXOR Y3, Y3, Y3
rsloop:
	VMOVDQU (DX), Y0
	VPCMPEQD Y3, Y0, Y0
	VMOVDQU (SI), Y1
	VPANDN  Y1, Y0, Y1
	VMOVDQU Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	DECQ CX
	JNZ  rsloop
rsdone:
	VZEROUPPER
	RET

// func sum8AVX(x *float32, n int, s *[8]float32)
//
// s[j] += x[i] for i < n with i mod 8 = j, in order of i (n a multiple of 8): sum32's eight
// partial sums, one vector lane each.
TEXT ·sum8AVX(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ s+16(FP), DI
	VMOVUPS (DI), Y0
	SHRQ $3, CX
	JZ   sdone
sloop:
	VADDPS (SI), Y0, Y0
	ADDQ $32, SI
	DECQ CX
	JNZ  sloop
sdone:
	VMOVUPS Y0, (DI)
	VZEROUPPER
	RET

// Output offsets 0, 2, ..., 14 of eight 2x2 windows in a row.
DATA evenIdx<>+0(SB)/4, $0
DATA evenIdx<>+4(SB)/4, $2
DATA evenIdx<>+8(SB)/4, $4
DATA evenIdx<>+12(SB)/4, $6
DATA evenIdx<>+16(SB)/4, $8
DATA evenIdx<>+20(SB)/4, $10
DATA evenIdx<>+24(SB)/4, $12
DATA evenIdx<>+28(SB)/4, $14
GLOBL evenIdx<>(SB), RODATA|NOPTR, $32

// func maxPool2x2AVX(r0, r1 *float32, out *float32, arg *int32, n, i0, w int)
//
// maxPool2x2 for n outputs of one row (n a multiple of 8): r0 and r1 are the two input
// rows, i0 the plane index of r0[0], w the plane width. Values are compared as
// order-preserving integer keys (floatKey); a later element of a window wins only when
// strictly greater, so ties go to the first, as in the Go loop.
TEXT ·maxPool2x2AVX(SB), NOSPLIT, $0-56
	MOVQ r0+0(FP), SI
	MOVQ r1+8(FP), DX
	MOVQ out+16(FP), DI
	MOVQ arg+24(FP), R8
	MOVQ n+32(FP), CX
	MOVQ i0+40(FP), AX
	MOVQ w+48(FP), BX
	SHRQ $3, CX
	JZ   mpdone
	MOVL $0x7fffffff, R9
	VMOVD R9, X15
	VPBROADCASTD X15, Y15
	VMOVDQU evenIdx<>(SB), Y14
	MOVL $1, R9
	VMOVD R9, X13
	VPBROADCASTD X13, Y13
	VMOVD BX, X12
	VPBROADCASTD X12, Y12
mploop:
	// Even (a, c) and odd (b, d) elements of the windows, in output order.
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1
	VSHUFPS $0x88, Y1, Y0, Y2
	VSHUFPS $0xDD, Y1, Y0, Y3
	VPERMQ  $0xD8, Y2, Y2
	VPERMQ  $0xD8, Y3, Y3
	VMOVDQU (DX), Y0
	VMOVDQU 32(DX), Y1
	VSHUFPS $0x88, Y1, Y0, Y4
	VSHUFPS $0xDD, Y1, Y0, Y5
	VPERMQ  $0xD8, Y4, Y4
	VPERMQ  $0xD8, Y5, Y5
	// Keys: k = x ^ ((x >> 31) & 0x7fffffff).
	VPSRAD $31, Y2, Y10
	VPAND  Y15, Y10, Y10
	VPXOR  Y10, Y2, Y2
	VPSRAD $31, Y3, Y10
	VPAND  Y15, Y10, Y10
	VPXOR  Y10, Y3, Y3
	VPSRAD $31, Y4, Y10
	VPAND  Y15, Y10, Y10
	VPXOR  Y10, Y4, Y4
	VPSRAD $31, Y5, Y10
	VPAND  Y15, Y10, Y10
	VPXOR  Y10, Y5, Y5
	// Indices: a at i0 + 2j, b = a + 1, c = a + w, d = c + 1.
	VMOVD AX, X9
	VPBROADCASTD X9, Y9
	VPADDD Y14, Y9, Y9
	VMOVDQU Y9, Y6
	VPADDD Y13, Y9, Y7
	VPCMPGTD  Y2, Y3, Y8
	VPBLENDVB Y8, Y3, Y2, Y2
	VPBLENDVB Y8, Y7, Y6, Y6
	VPADDD Y12, Y9, Y7
	VPCMPGTD  Y2, Y4, Y8
	VPBLENDVB Y8, Y4, Y2, Y2
	VPBLENDVB Y8, Y7, Y6, Y6
	VPADDD Y13, Y7, Y7
	VPCMPGTD  Y2, Y5, Y8
	VPBLENDVB Y8, Y5, Y2, Y2
	VPBLENDVB Y8, Y7, Y6, Y6
	// Back from key to value (the map is its own inverse).
	VPSRAD $31, Y2, Y10
	VPAND  Y15, Y10, Y10
	VPXOR  Y10, Y2, Y2
	VMOVDQU Y2, (DI)
	VMOVDQU Y6, (R8)
	ADDQ $64, SI
	ADDQ $64, DX
	ADDQ $32, DI
	ADDQ $32, R8
	ADDQ $16, AX
	DECQ CX
	JNZ  mploop
mpdone:
	VZEROUPPER
	RET
